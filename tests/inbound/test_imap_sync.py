"""IMAP two-way sync against a real Dovecot: connect, initial and incremental sync,
UIDVALIDITY changes, refused credentials and reconnect, one record per message."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from gateway.imap.connection import MailboxError
from gateway.models import (
    Event,
    Mailbox,
    MailboxFolder,
    Message,
    ScannedMessage,
    Sighting,
    Source,
)
from gateway.vault import Vault
from inbound.imap.mailboxes import reconnect, remove
from tests.helpers.imap import attached_subjects, connect_mailbox, contacts, fill, sync
from tests.helpers.mail import make_message
from tests.helpers.pipeline import count, push
from tests.helpers.web import running_web, sample
from tests.peers.dovecot import ImapUser

# -- connecting -------------------------------------------------------------------------


# -- syncing ----------------------------------------------------------------------------


def test_initial_sync_fetches_only_the_messages_of_contacts(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com", "dan@client.com")
    fill(imap_user, "INBOX", 40, {3, 11, 25, 39}, "in")
    sent = [
        make_message(from_="bob@acme.com", to=f"x{i}@else.example", subject=f"out {i}")
        for i in range(9)
    ]
    sent.append(make_message(from_="bob@acme.com", to="Dan <dan@client.com>", subject="out to dan"))
    imap_user.append("Sent", *sent)
    imap_user.append("Junk", make_message(from_="carol@client.com", subject="junk"))
    connect_mailbox(db, imap_config, imap_user)

    report = sync(db, imap_config)

    assert (report.scanned, report.fetched) == (50, 5)
    assert attached_subjects(db) == ["in 11", "in 25", "in 3", "in 39", "out to dan"]
    # Headers of all 50 in batches of 7, bodies of exactly the 5 matched.
    assert sorted(imap_user.body_fetches()) == [4, 10, 12, 26, 40]
    assert len(imap_user.header_fetches()) == 50
    # Never marked as read (BODY.PEEK).
    with imap_user.server.client(imap_user.name) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search(["SEEN"]) == []
    with db.session() as session:
        folders = {f.role: f for f in session.scalars(select(MailboxFolder))}
        assert folders["inbox"].last_uid == 40 and folders["inbox"].initial_done
        assert (folders["inbox"].scanned, folders["inbox"].matched) == (40, 4)
        assert folders["sent"].name == "Sent"
        direction = session.scalar(select(Message.direction).where(Message.subject == "out to dan"))
    assert direction == "outgoing"


def test_incremental_sync_reads_only_new_mail(db, imap_config, account_id, imap_user) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 10, {2}, "a")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    fetched_before = imap_user.header_fetches()

    fill(imap_user, "INBOX", 5, {0, 4}, "b")
    report = sync(db, imap_config)
    assert (report.scanned, report.fetched) == (5, 2)
    new_header_fetches = imap_user.header_fetches()[len(fetched_before) :]
    assert sorted(new_header_fetches) == [11, 12, 13, 14, 15]
    assert attached_subjects(db) == ["a 2", "b 0", "b 4"]

    assert sync(db, imap_config).scanned == 0  # nothing new, nothing fetched again
    assert count(db, Message) == 3


def test_a_contact_added_later_gets_their_older_mail_without_a_rescan(
    db, imap_config, account_id, imap_user
) -> None:
    fill(imap_user, "INBOX", 5, {1, 3}, "c")
    imap_user.append("Sent", make_message(from_="bob@acme.com", to="carol@client.com", subject="s"))
    connect_mailbox(db, imap_config, imap_user)
    assert sync(db, imap_config).fetched == 0  # carol is no contact yet
    with db.session() as session:
        indexed = session.scalars(select(ScannedMessage)).all()
        assert len(indexed) == 6 and not any(m.wanted for m in indexed)
    headers_read = len(imap_user.header_fetches())

    contacts(db, imap_config, account_id, "carol@client.com")
    report = sync(db, imap_config)

    assert report.fetched == 3 and report.scanned == 0
    assert len(imap_user.header_fetches()) == headers_read  # no folder read again
    assert attached_subjects(db) == ["c 1", "c 3", "s"]
    assert count(db, ScannedMessage) == 3  # the strangers' stay indexed
    contacts(db, imap_config, account_id, "stranger0@nowhere.example")
    assert sync(db, imap_config).fetched == 1
    assert count(db, ScannedMessage) == 2


def test_the_header_index_forgets_a_folder_whose_uidvalidity_changed(
    db, imap_config, account_id, imap_user
) -> None:
    fill(imap_user, "INBOX", 3, set(), "w")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    assert count(db, ScannedMessage) == 3
    imap_user.server.set_uidvalidity(imap_user.name, "INBOX", 777)
    sync(db, imap_config)
    with db.session() as session:
        assert set(session.scalars(select(ScannedMessage.uidvalidity))) == {777}
    assert count(db, ScannedMessage) == 3


def test_the_same_message_by_dropbox_and_imap_sent_is_one_record(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    raw = make_message(from_="Bob <bob@acme.com>", to="Carol <carol@client.com>", subject="Quote")
    first = push(db, imap_config, raw, source=Source.DROPBOX)
    imap_user.append("Sent", raw)
    connect_mailbox(db, imap_config, imap_user)
    report = sync(db, imap_config)
    assert (report.matched, report.fetched) == (1, 0)  # known by its identity: not downloaded
    assert imap_user.body_fetches() == []
    with db.session() as session:
        assert session.scalars(select(Message.id)).all() == [first.message_id]
    # A different message reusing a stored message's Message-ID is not hidden by it.
    impostor = make_message(
        from_="Mallory <carol@client.com>", subject="Other", message_id="<sameid@x>"
    )
    original = make_message(from_="carol@client.com", subject="Real", message_id="<sameid@x>")
    push(db, imap_config, original, source=Source.DROPBOX)
    imap_user.append("INBOX", impostor)
    assert sync(db, imap_config).fetched == 1
    assert count(db, Message) == 3


def test_a_uidvalidity_change_rescans_the_folder_without_duplicates(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 6, {1, 4}, "v")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    imap_user.server.set_uidvalidity(imap_user.name, "INBOX", 4242)

    report = sync(db, imap_config)

    inbox = next(f for f in report.folders if f.role == "inbox")
    assert inbox.uidvalidity_changed and inbox.scanned == 6
    assert (inbox.matched, inbox.fetched) == (2, 0)  # the same two messages: not again
    assert count(db, Message) == 2
    with db.session() as session:
        folder = session.scalar(select(MailboxFolder).where(MailboxFolder.role == "inbox"))
        assert folder is not None and folder.uidvalidity == 4242


def test_refused_credentials_stop_the_mailbox_until_reconnected(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 4, {0}, "p")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    imap_user.server.set_password(imap_user.name, "secret-2")  # the user reset it
    fill(imap_user, "INBOX", 2, {1}, "q")

    with pytest.raises(MailboxError):
        sync(db, imap_config)
    with db.session() as session:
        mailbox = session.scalars(select(Mailbox)).one()
        assert mailbox.state == "reconnect_required"
        assert "refused" in (mailbox.last_error or "")
        event = session.scalars(
            select(Event).where(Event.kind == "mailbox.reconnect_required")
        ).one()
        assert event.payload["email"] == "bob@acme.com"

    vault = Vault.load(imap_config.secret_key_file)
    with pytest.raises(MailboxError):
        reconnect(db, imap_config, vault, "bob@acme.com", "secret-1")  # the old one: refused
    reconnect(db, imap_config, vault, "bob@acme.com", "secret-2")
    fetched_before = len(imap_user.body_fetches())
    report = sync(db, imap_config)
    assert (report.scanned, report.fetched) == (2, 1)  # from the checkpoint on
    assert len(imap_user.body_fetches()) == fetched_before + 1
    assert attached_subjects(db) == ["p 0", "q 1"]


def test_removing_a_mailbox_deletes_credentials_but_keeps_its_mail(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 2, {0}, "r")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    remove(db, imap_config, "bob@acme.com")
    assert count(db, Mailbox) == 0 and count(db, MailboxFolder) == 0
    assert attached_subjects(db) == ["r 0"]
    with db.session() as session:
        payloads = [
            e.payload for e in session.scalars(select(Event)) if e.kind == "mailbox.removed"
        ]
    assert json.dumps(payloads) and payloads[0]["email"] == "bob@acme.com"


def test_the_audit_finds_and_fetches_mail_that_was_silently_missed(
    db, imap_config, account_id, imap_user
) -> None:
    from inbound.imap.service import audit_now

    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 6, {0, 2, 4}, "m")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    vault = Vault.load(imap_config.secret_key_file)
    clean = audit_now(db, imap_config, vault, "bob@acme.com")
    inbox = next(f for f in clean if f.role == "inbox")
    assert (inbox.on_server, inbox.involving_contacts, inbox.missing) == (6, 3, 0)

    # Lose two stored messages behind the gateway's back (a bug, a restore gone wrong).
    with db.session() as session:
        lost = session.scalars(select(Sighting).order_by(Sighting.id).limit(2)).all()
        for sighting in lost:
            session.delete(sighting)
    with db.session() as session:
        for message in session.scalars(select(Message).order_by(Message.id).limit(2)):
            session.delete(message)

    counted = audit_now(db, imap_config, vault, "bob@acme.com", repair=False)
    assert next(f for f in counted if f.role == "inbox").missing == 2
    with db.session() as session:
        folder = session.scalars(select(MailboxFolder).where(MailboxFolder.role == "inbox")).one()
        assert folder.missing == 2 and folder.audited_at is not None
    who = {"mailbox": "bob@acme.com", "folder": "inbox"}
    with running_web(db, imap_config) as url:  # "missing N" on /metrics too
        assert (
            sample(httpx.get(f"{url}/metrics").text, "gateway_mailbox_missing_messages", **who) == 2
        )

    repaired = audit_now(db, imap_config, vault, "bob@acme.com")
    assert next(f for f in repaired if f.role == "inbox").repaired == 2
    assert attached_subjects(db) == ["m 0", "m 2", "m 4"]
    with db.session() as session:
        folder = session.scalars(select(MailboxFolder).where(MailboxFolder.role == "inbox")).one()
        assert folder.missing == 0
    again = audit_now(db, imap_config, vault, "bob@acme.com")
    assert next(f for f in again if f.role == "inbox").missing == 0
    with running_web(db, imap_config) as url:
        assert (
            sample(httpx.get(f"{url}/metrics").text, "gateway_mailbox_missing_messages", **who) == 0
        )


def test_a_message_stored_through_the_dropbox_is_not_missing(
    db, imap_config, account_id, imap_user
) -> None:
    from inbound.imap.service import audit_now

    contacts(db, imap_config, account_id, "carol@client.com")
    raw = make_message(from_="carol@client.com", subject="via dropbox", message_id="<dx@x>")
    push(db, imap_config, raw, source=Source.DROPBOX)
    imap_user.append("INBOX", raw)
    connect_mailbox(db, imap_config, imap_user)
    with db.session() as session:  # the folder is known but not synced yet: checkpoint 1
        session.add(
            MailboxFolder(
                mailbox_id=session.scalars(select(Mailbox.id)).one(),
                role="inbox",
                name="INBOX",
                uidvalidity=next(iter(imap_uidvalidity(imap_user))),
                last_uid=1,
                initial_done=True,
            )
        )
    found = audit_now(db, imap_config, Vault.load(imap_config.secret_key_file), "bob@acme.com")
    inbox = next(f for f in found if f.role == "inbox")
    assert (inbox.involving_contacts, inbox.missing) == (1, 0)


def imap_uidvalidity(user: ImapUser) -> set[int]:
    with user.server.client(user.name) as client:
        return {int(client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"])}


def test_condstore_skips_the_search_of_a_folder_that_did_not_change(
    db, imap_config, account_id, imap_user
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(imap_user, "INBOX", 3, {0}, "k")
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)

    def searches() -> int:
        return sum(
            "UID SEARCH" in line.upper()
            for line in imap_user.server.rawlog(imap_user.name).splitlines()
        )

    before = searches()
    assert sync(db, imap_config).scanned == 0
    assert searches() == before  # HIGHESTMODSEQ unchanged: INBOX and Sent not searched
    fill(imap_user, "INBOX", 1, {0}, "l")
    assert sync(db, imap_config).fetched == 1
    assert searches() == before + 1  # only INBOX changed
    with db.session() as session:
        inbox = session.scalars(select(MailboxFolder).where(MailboxFolder.role == "inbox")).one()
        assert inbox.highestmodseq is not None


def test_a_contact_created_while_a_batch_is_in_flight_is_not_missed(
    db, imap_config, account_id, imap_user, monkeypatch
) -> None:
    """The contact appears after the batch's headers were matched and before its rows
    are written (while bodies download): its message must still be fetched."""
    from inbound.imap import batches, scan

    fill(imap_user, "INBOX", 3, {1}, "race")
    connect_mailbox(db, imap_config, imap_user)
    real = scan.bodies
    created: list[bool] = []

    def bodies_then_contact(client, uids, headers, pipeline=None):
        out = real(client, uids, headers, pipeline)
        if not created:
            contacts(db, imap_config, account_id, "carol@client.com")
            created.append(True)
        return out

    monkeypatch.setattr(batches, "bodies", bodies_then_contact)
    report = sync(db, imap_config)
    # Matched before carol existed, marked wanted when its rows were written, and
    # fetched by the same pass's look at wanted messages.
    assert (report.matched, report.fetched) == (1, 1)
    assert attached_subjects(db) == ["race 1"]
    with db.session() as session:
        assert session.scalars(select(ScannedMessage.uid).where(ScannedMessage.wanted)).all() == []
