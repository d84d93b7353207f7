"""The delivery role's work against capturing SMTP servers on loopback: the relay route
(TLS, AUTH) and the direct route (MX from the test DNS server), DKIM signatures that
dkimpy verifies, Bcc removed, per-recipient results (sent, bounced with the remote
reply, deferred and retried), the maximum age, and a crash in the middle of sending."""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dkim
import pytest
import trustme
from sqlalchemy import select

from gateway.accounts import get_account
from gateway.config import Config, OutboundConfig
from gateway.db import Database
from gateway.mail_queue import retry
from gateway.models import Event, OutboundMessage
from gateway.vault import Vault
from outbound.delivery import Delivery
from outbound.dkim_keys import generate, record
from tests.helpers.outbound import (
    MESSAGE,
    client_test_mx,
    connect_sending_mailbox,
    deliver_once,
    due_now,
    outbound_config,
    queue_message,
    relay_config,
    states,
)
from tests.helpers.wait import eventually
from tests.peers.dns import ZoneServer
from tests.peers.smtp_sink import Sink


def test_the_relay_route_signs_drops_bcc_and_sends(
    db: Database,
    config: Config,
    account_id: int,
    zone_server: ZoneServer,
    sink: Sink,
) -> None:
    cfg = relay_config(config, zone_server, sink)
    vault = Vault.load(cfg.secret_key_file)
    with db.session() as session:
        key = generate(session, vault, get_account(session), "acme.com")
        name, value = record(key)
    zone_server.clear()
    zone_server.set(name, "TXT", value)
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test", "boss@acme.com"])
    deliver_once(Delivery(db, cfg))

    [got] = sink.received
    assert got.login == "relayuser"
    assert sorted(got.recipients) == ["boss@acme.com", "carol@client.test"]
    assert b"Bcc:" not in got.data.split(b"\r\n\r\n")[0]
    assert got.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.com")

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if name.decode().rstrip(".") == record(key)[0] else None

    assert dkim.verify(got.data, dnsfunc=txt)
    state, recipients = states(db, message_id)
    assert state == "sent"
    assert {s for s, _ in recipients.values()} == {"sent"}
    assert all("250" in (reply or "") for _, reply in recipients.values())
    with db.read() as session:
        kinds = list(session.scalars(select(Event.kind)))
    assert "message.sent" in kinds


def test_the_direct_route_follows_the_mx_and_keeps_each_recipients_answer(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    zone_server.set("nomail.test", "MX", (0, ""))  # the root: RFC 7505 null MX
    mx.rcpt_replies["gone@client.test"] = "550 5.1.1 No such user here"
    mx.rcpt_replies["full@client.test"] = "452 4.2.2 Mailbox full"
    message_id = queue_message(
        db,
        cfg,
        MESSAGE,
        ["carol@client.test", "gone@client.test", "full@client.test", "x@nomail.test"],
    )
    delivery = Delivery(db, cfg)
    deliver_once(delivery)
    state, recipients = states(db, message_id)
    assert [r.recipients for r in mx.received] == [["carol@client.test"]]
    assert recipients["carol@client.test"][0] == "sent"
    assert recipients["gone@client.test"] == ("bounced", "550 5.1.1 No such user here")
    assert recipients["full@client.test"][0] == "deferred"
    assert recipients["x@nomail.test"][0] == "bounced"  # RFC 7505 null MX
    assert state == "deferred"
    with db.read() as session:
        bounced = [
            e.payload["recipient"]
            for e in session.scalars(select(Event).where(Event.kind == "message.bounced"))
        ]
    assert sorted(bounced) == ["gone@client.test", "x@nomail.test"]

    # Not due yet: nothing is tried. Once due, only the deferred recipient is.
    deliver_once(delivery)
    assert len(mx.received) == 1
    del mx.rcpt_replies["full@client.test"]
    due_now(db, message_id)
    deliver_once(delivery)
    assert [r.recipients for r in mx.received][-1] == ["full@client.test"]
    state, recipients = states(db, message_id)
    assert recipients["full@client.test"][0] == "sent" and state == "sent"


def test_by_default_nothing_leaves_until_a_route_is_set(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """[outbound] default_route is "hold": a user with no route and no mailbox has their
    mail kept in the queue, deferred with a reply that says what to set; once an
    operator sets a route, a retry sends it."""
    from outbound.routes import HELD

    assert OutboundConfig().default_route == "hold"
    cfg = outbound_config(config, zone_server, default_route="hold", direct_port=mx.port)
    client_test_mx(zone_server)
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    deliver_once(Delivery(db, cfg))
    state, recipients = states(db, message_id)
    assert state == "deferred" and mx.received == []
    assert recipients["carol@client.test"] == ("deferred", f"451 {HELD}")
    direct = replace(cfg, outbound=replace(cfg.outbound, default_route="direct"))
    retry(db, message_id)
    deliver_once(Delivery(db, direct))
    assert states(db, message_id)[0] == "sent" and len(mx.received) == 1


def test_a_server_that_hangs_or_is_away_defers_and_max_age_bounces(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    cfg = outbound_config(config, zone_server, direct_port=mx.port, timeout=1.0)
    client_test_mx(zone_server)
    mx.hang = 3.0
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    delivery = Delivery(db, cfg)
    deliver_once(delivery)
    state, recipients = states(db, message_id)
    assert state == "deferred" and recipients["carol@client.test"][0] == "deferred"
    with db.read() as session:
        message = session.get_one(OutboundMessage, message_id)
        assert message.next_attempt_at > message.updated_at + timedelta(seconds=50)
    # Five days later, still not delivered: bounced, saying why.
    with db.session() as session:
        message = session.get_one(OutboundMessage, message_id)
        message.created_at -= timedelta(days=6)
    due_now(db, message_id)
    deliver_once(delivery)
    state, recipients = states(db, message_id)
    assert state == "bounced"
    assert "gave up after 6.0 days" in (recipients["carol@client.test"][1] or "")
    # Nobody refused it: the CRM hears message.delivery_failed, not a bounce.
    with db.read() as session:
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id))]
        failed = session.scalars(select(Event).where(Event.kind == "message.delivery_failed")).one()
    assert "message.bounced" not in kinds
    assert failed.payload["recipient"] == "carol@client.test"
    assert "gave up after 6.0 days" in failed.payload["reply"]


def test_submission_to_relay_end_to_end(
    db: Database,
    config: Config,
    account_id: int,
    zone_server: ZoneServer,
    sink: Sink,
    authority: trustme.CA,
    tmp_path: Path,
) -> None:
    """`submission` and `delivery` in one process: a message sent with AUTH reaches the
    relay, woken at once rather than at the next poll."""
    import smtplib

    from gateway.config import TlsConfig
    from gateway.registry import build_roles
    from gateway.role import RoleContext
    from gateway.tokens import create_token
    from tests.helpers.roles import running

    leaf = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    # Polling is an hour away: only the wake-up can deliver it within the wait below.
    cfg = relay_config(config, zone_server, sink, poll_interval=3600.0)
    cfg = replace(
        cfg,
        tls=TlsConfig(cert_file=str(cert), key_file=str(key)),
        submission=replace(cfg.submission, listen="127.0.0.1:0", auth_failure_delay=0.0),
    )
    with db.session() as session:
        token = create_token(session, cfg, "bob@acme.com").token
    roles = build_roles(["submission", "delivery"], RoleContext(db, cfg))
    with running(roles):
        port = roles["submission"].port()  # type: ignore[attr-defined]
        client_tls = ssl.create_default_context()
        authority.configure_trust(client_tls)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=client_tls)
            client.login("bob@acme.com", token)
            client.sendmail("bob@acme.com", ["carol@client.test"], MESSAGE)
        eventually(lambda: bool(sink.received), seconds=30)  # not woken: an hour


def test_copies_to_sent_do_not_hold_up_sending(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, sink: Sink
) -> None:
    """A copy to Sent may wait seconds (a server that saves its own copy gets time to
    do so): the role makes copies apart from its sending slots, so with one slot three
    messages still leave while the first copy is held, and each copy is made once."""
    import threading

    from outbound.delivery_role import DeliveryRole
    from tests.helpers.roles import running

    cfg = relay_config(config, zone_server, sink, concurrency=1, poll_interval=0.05)
    connect_sending_mailbox(db, cfg, account_id, sink, "password", "relaypass")
    for n in range(3):
        queue_message(db, cfg, MESSAGE.replace(b"Our offer", f"offer {n}".encode()), ["c@x.test"])
    copies: list[str] = []
    held = threading.Event()  # copies wait until all three messages were sent

    def held_copy(user_id: int, raw: bytes, message_id: str, via_mailbox: bool) -> str:
        held.wait(30)
        copies.append(message_id)
        return "appended"

    role = DeliveryRole(db, cfg, sent_copy=held_copy)
    with running({"delivery": role}):
        try:
            # With the copy made in the sending slot, the first message's copy would
            # hold the only slot: the second message could not leave.
            eventually(lambda: len(sink.received) == 3, seconds=20)
        finally:
            held.set()
        eventually(lambda: len(copies) == 3, seconds=20)
    assert len(copies) == len(set(copies)) == 3
    with db.read() as session:
        assert set(session.scalars(select(OutboundMessage.sent_copy))) == {"appended"}


@pytest.mark.parametrize("auth", ["password", "oauth2"])
def test_the_users_own_mailbox_is_the_default_route(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, sink: Sink, auth: str
) -> None:
    """A user with a connected mailbox sends through its SMTP server, signed in with
    their password or XOAUTH2 token; without one, [outbound] default_route applies."""
    import json

    cfg = outbound_config(config, zone_server)
    secret = "relaypass" if auth == "password" else json.dumps({"access_token": "relaypass"})
    connect_sending_mailbox(db, cfg, account_id, sink, auth, secret)
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    deliver_once(Delivery(db, cfg))
    [got] = sink.received
    assert got.login == "relayuser" and got.recipients == ["carol@client.test"]
    assert states(db, message_id)[0] == "sent"
    with db.read() as session:
        assert session.get_one(OutboundMessage, message_id).route == "mailbox"


def test_a_refused_mailbox_password_defers_instead_of_bouncing(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, sink: Sink
) -> None:
    cfg = outbound_config(config, zone_server)
    connect_sending_mailbox(db, cfg, account_id, sink, "password", "old-password")
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    deliver_once(Delivery(db, cfg))
    state, recipients = states(db, message_id)
    assert state == "deferred"
    assert (recipients["carol@client.test"][1] or "").startswith("454 4.7.0 sign-in refused")
    assert sink.received == []


def test_sent_mail_is_attached_to_contacts_and_new_recipients_auto_created(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    from gateway.contacts import add_contact
    from gateway.directory import AccountDirectory
    from gateway.models import Account, Contact, ContactEmail, Message, MessageContact
    from gateway.pipeline import Pipeline

    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    with db.session() as session:
        account = session.get_one(Account, account_id)
        account.auto_create_contacts = True
        directory = AccountDirectory.load(session, account, cfg)
        add_contact(session, directory, ["carol@client.test"], "Carol", "lower")
    raw = MESSAGE.replace(b"To: carol@client.test", b"To: carol@client.test, dan@client.test")
    message_id = queue_message(db, cfg, raw, ["carol@client.test", "dan@client.test"])
    deliver_once(Delivery(db, cfg))
    assert states(db, message_id)[0] == "sent"
    Pipeline(db, cfg).run_pending()
    with db.read() as session:
        [message] = session.scalars(select(Message)).all()
        attached = set(
            session.scalars(
                select(ContactEmail.address)
                .join(Contact, Contact.id == ContactEmail.contact_id)
                .join(MessageContact, MessageContact.contact_id == Contact.id)
                .where(MessageContact.message_id == message.id)
            )
        )
    assert message.direction == "outgoing"
    # Carol was a contact; Dan (To) is new and was auto-created.
    assert {"carol@client.test", "dan@client.test"} <= attached


def test_sessions_are_kept_open_between_messages_and_reopened_when_dropped(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, sink: Sink
) -> None:
    cfg = relay_config(config, zone_server, sink)
    delivery = Delivery(db, cfg)
    for n in range(3):
        queue_message(db, cfg, MESSAGE, [f"r{n}@client.test"])
        deliver_once(delivery)
    assert len(sink.received) == 3
    assert sink.authentications == 1  # one TLS session and one AUTH for all three
    # A server that hangs up after each message: the kept session is found dead at
    # MAIL and the message goes through a fresh one, nothing deferred.
    sink.hang_up_after_data = True
    for n in range(3):
        message_id = queue_message(db, cfg, MESSAGE, [f"s{n}@client.test"])
        deliver_once(delivery)
        assert states(db, message_id)[0] == "sent"
        import time

        time.sleep(0.2)  # the sink has hung up
    assert len(sink.received) == 6
