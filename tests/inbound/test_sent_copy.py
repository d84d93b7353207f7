"""The copy of sent mail in the user's Sent folder (a real Dovecot): appended once with
\\Seen, never twice, the server's own copy respected and remembered; and, through the
delivery role, the same message seen again by the two-way sync is one message."""

from __future__ import annotations

import functools
from dataclasses import replace

from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, Message, OutboundMessage, Sighting
from gateway.vault import Vault
from outbound.sent_copy import save_to_sent
from tests.helpers.imap import connect_mailbox, contacts, sync
from tests.helpers.mail import make_message
from tests.peers.dovecot import ImapUser


def sent_folder(user: ImapUser) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """(Message-ID header line, flags) of each message in the user's Sent."""
    with user.server.client(user.name) as client:
        client.select_folder("Sent", readonly=True)
        found = client.fetch(
            client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        )
        client.logout()
    return [
        (item[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].strip(), item[b"FLAGS"])
        for _, item in sorted(found.items())
    ]


def bob_id(db: Database) -> int:
    with db.read() as session:
        return int(session.scalars(select(Mailbox.user_id)).one())


def test_the_copy_is_appended_once_and_seen(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser
) -> None:
    connect_mailbox(db, imap_config, imap_user)
    vault = Vault.load(imap_config.secret_key_file)
    raw = make_message(from_="bob@acme.com", to="carol@client.com", message_id="<out-1@acme.com>")
    save = functools.partial(save_to_sent, db, imap_config, vault, bob_id(db))
    assert save(raw, "out-1@acme.com", False) == "appended"
    assert save(raw, "out-1@acme.com", False) == "present"  # a second try adds nothing
    [(header, flags)] = sent_folder(imap_user)
    assert header == b"Message-ID: <out-1@acme.com>" and b"\\Seen" in flags


def test_a_server_that_saves_its_own_copy_is_respected_and_remembered(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser
) -> None:
    connect_mailbox(db, imap_config, imap_user)
    vault = Vault.load(imap_config.secret_key_file)
    raw = make_message(from_="bob@acme.com", message_id="<out-2@acme.com>")
    imap_user.append("Sent", raw, flags=("\\Seen",))  # as Gmail does when it relays
    save = functools.partial(save_to_sent, db, imap_config, vault, bob_id(db), grace=0.1)
    assert save(raw, "out-2@acme.com", True) == "present"
    with db.read() as session:
        assert session.scalars(select(Mailbox.server_saves_sent)).one() is True
    other = make_message(from_="bob@acme.com", message_id="<out-3@acme.com>")
    assert save(other, "out-3@acme.com", True) == "appended"  # it did not, this time
    assert len(sent_folder(imap_user)) == 2
    with db.read() as session:
        assert session.scalars(select(Mailbox.server_saves_sent)).one() is False


def test_no_mailbox_and_unsafe_message_ids(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser
) -> None:
    import pytest

    vault = Vault.load(imap_config.secret_key_file)
    assert save_to_sent(db, imap_config, vault, 1, b"x", "a@b", False) == "no mailbox"
    connect_mailbox(db, imap_config, imap_user)
    with pytest.raises(ValueError):
        save_to_sent(db, imap_config, vault, bob_id(db), b"x", 'a@b" OR ALL', False)


def test_sent_mail_is_one_message_with_its_copy_in_sent(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser, zone_server, tmp_path
) -> None:
    """Sent by the delivery role, copied to Sent, then read back by the two-way sync:
    one Message with two sightings (outbound and IMAP)."""
    from gateway.mail_queue import enqueue
    from gateway.pipeline import Pipeline
    from outbound.delivery import Delivery
    from outbound.hygiene import prepare
    from tests.helpers.outbound import client_test_mx, outbound_config
    from tests.peers.smtp_sink import Sink

    mx = Sink()
    try:
        contacts(db, imap_config, account_id, "carol@client.test")
        connect_mailbox(db, imap_config, imap_user)
        cfg = outbound_config(imap_config, zone_server, direct_port=mx.port)
        cfg = replace(cfg, outbound=replace(cfg.outbound, default_route="direct"))
        client_test_mx(zone_server)
        with db.session() as session:
            from gateway.accounts import get_user

            bob = get_user(session, cfg, "bob@acme.com")
            bob.route = "direct"  # the test Dovecot has no SMTP server
            session.flush()
            session.expunge(bob)
        raw = b"From: bob@acme.com\r\nTo: carol@client.test\r\nSubject: offer\r\n\r\nhi\r\n"
        enqueue(db, bob, "bob@acme.com", ["carol@client.test"], prepare(raw), "api")
        vault = Vault.load(cfg.secret_key_file)
        delivery = Delivery(db, cfg, functools.partial(save_to_sent, db, cfg, vault))
        for job in delivery.claim(10):
            delivery.attempt(job)
        delivery.close()
        assert len(mx.received) == 1
        with db.read() as session:
            assert session.scalars(select(OutboundMessage.sent_copy)).one() == "appended"
        sync(db, cfg)  # two-way sync reads Sent: the copy is seen there
        Pipeline(db, cfg).run_pending()
        with db.read() as session:
            assert len(session.scalars(select(Message)).all()) == 1
            sources = sorted(session.scalars(select(Sighting.source)))
        assert sources == ["imap", "outbound"]
    finally:
        mx.close()


def test_a_copy_that_failed_or_never_ran_is_made_later(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser, zone_server
) -> None:
    """The Sent folder was unreachable when the message went out (or the process
    stopped right after sending): the delivery role makes the copy later, once."""
    from gateway.mail_queue import enqueue
    from outbound.delivery import Delivery
    from outbound.hygiene import prepare
    from tests.helpers.outbound import client_test_mx, outbound_config
    from tests.peers.smtp_sink import Sink

    mx = Sink()
    try:
        connect_mailbox(db, imap_config, imap_user)
        cfg = outbound_config(imap_config, zone_server, direct_port=mx.port, retry_base=0.01)
        client_test_mx(zone_server)
        with db.session() as session:
            from gateway.accounts import get_user

            bob = get_user(session, cfg, "bob@acme.com")
            bob.route = "direct"
            mailbox = session.scalars(select(Mailbox)).one()
            real_port, mailbox.imap_port = mailbox.imap_port, 1  # the IMAP server is away
            session.flush()
            session.expunge(bob)
        raw = b"From: bob@acme.com\r\nTo: carol@client.test\r\nSubject: later\r\n\r\nhi\r\n"
        enqueue(db, bob, "bob@acme.com", ["carol@client.test"], prepare(raw), "api")
        vault = Vault.load(cfg.secret_key_file)
        delivery = Delivery(db, cfg, functools.partial(save_to_sent, db, cfg, vault))
        for job in delivery.claim(10):
            delivery.attempt(job)
        with db.read() as session:
            [(message_id, outcome)] = session.execute(
                select(OutboundMessage.id, OutboundMessage.sent_copy)
            ).all()
        assert (outcome or "").startswith("error 1:") and sent_folder(imap_user) == []

        with db.session() as session:
            session.scalars(select(Mailbox)).one().imap_port = real_port  # it is back
        import time

        time.sleep(0.05)
        assert delivery.copies_due(10) == [message_id]
        assert delivery.copy_to_sent(message_id) == "appended"
        assert delivery.copies_due(10) == []  # done: never again
        assert len(sent_folder(imap_user)) == 1

        # A stop between sending and copying leaves no outcome: it is due at once.
        with db.session() as session:
            session.get_one(OutboundMessage, message_id).sent_copy = None
        assert delivery.copies_due(10) == [message_id]
        assert delivery.copy_to_sent(message_id) == "present"  # found there: not twice
        assert len(sent_folder(imap_user)) == 1
        delivery.close()
    finally:
        mx.close()
