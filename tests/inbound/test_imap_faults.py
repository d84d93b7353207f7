"""IMAP sync against a server that misbehaves on purpose (tests.peers.imap_faults):
disconnects in the middle of a FETCH, renumbered UIDs, refused passwords, no IDLE and
no special-use flags, slow replies, malformed MIME, a hostile huge literal."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, Message, MessageContact, Sighting
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox, reconnect
from inbound.imap.service import sync_now
from tests.helpers.imap import attached_subjects, contacts, serving, sync
from tests.helpers.mail import make_message
from tests.helpers.pipeline import count
from tests.helpers.wait import eventually
from tests.peers.imap_faults import FaultyImap


@pytest.fixture
def faulty() -> Iterator[FaultyImap]:
    server = FaultyImap()
    server.add_user("bob", password="pw")
    yield server
    server.stop()


@pytest.fixture
def mailbox(db: Database, imap_config: Config, account_id: int, faulty: FaultyImap) -> Mailbox:
    contacts(db, imap_config, account_id, "carol@client.com")
    request = MailboxRequest(
        email="bob@acme.com",
        imap_host="127.0.0.1",
        imap_port=faulty.port,
        imap_security="none",
        username="bob",
    )
    return add_mailbox(db, imap_config, Vault.load(imap_config.secret_key_file), request, "pw")


def messages(total: int, matched: set[int], tag: str) -> list[bytes]:
    return [
        make_message(
            from_="carol@client.com" if i in matched else f"x{i}@nowhere.example",
            subject=f"{tag} {i}",
            message_id=f"<{tag}{i}@f.example>",
        )
        for i in range(total)
    ]


def fast(config: Config, **imap: Any) -> Config:
    return replace(config, imap=replace(config.imap, poll_interval=0.3, backoff_max=0.5, **imap))


def sightings(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Sighting)) or 0)


def test_a_disconnect_in_the_middle_of_a_fetch_loses_and_doubles_nothing(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append("bob", "INBOX", *messages(30, {2, 9, 16, 23, 29}, "d"))
    faulty.faults.drop_fetch_after = 1
    with serving(db, fast(imap_config)):
        eventually(lambda: len(attached_subjects(db)) == 5)
        eventually(
            lambda: (
                sum(c.startswith(("1 LOGIN", "2 LOGIN")) or " LOGIN " in c for c in faulty.commands)
                >= 2
            )
        )
    assert count(db, Message) == 5 and sightings(db) == 5
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MessageContact)) == 5


def test_renumbered_uids_after_a_uidvalidity_change_store_nothing_twice(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append("bob", "INBOX", *messages(8, {1, 5}, "u"))
    config = fast(imap_config)
    sync(db, config)
    assert count(db, Message) == 2
    faulty.set_uidvalidity("bob", "INBOX", 2000)
    faulty.append("bob", "INBOX", *messages(1, {0}, "new"))
    report = sync(db, config)
    inbox = next(f for f in report.folders if f.role == "inbox")
    assert inbox.uidvalidity_changed and (inbox.matched, inbox.fetched) == (3, 1)
    assert count(db, Message) == 3  # the two again are the same two messages
    assert attached_subjects(db) == ["new 0", "u 1", "u 5"]


def test_a_refused_password_then_reconnect_fetches_nothing_twice(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append("bob", "INBOX", *messages(4, {0, 3}, "p"))
    config = fast(imap_config)
    with serving(db, config):
        eventually(lambda: len(attached_subjects(db)) == 2)
        fetched = faulty.faults.body_fetches
        faulty.set_password("bob", "pw2")
        faulty.kick()
        faulty.append("bob", "INBOX", *messages(2, {1}, "q"))
        eventually(lambda: mailbox_state(db) == "reconnect_required", seconds=20)
        reconnect(db, config, Vault.load(config.secret_key_file), "bob@acme.com", "pw2")
        eventually(lambda: len(attached_subjects(db)) == 3)
    assert faulty.faults.body_fetches == fetched + 1  # only the new message's body
    assert count(db, Message) == 3


def mailbox_state(db: Database) -> str:
    with db.session() as session:
        return session.scalars(select(Mailbox.state)).one()


def test_without_idle_or_special_use_sent_is_found_by_name(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append(
        "bob", "Sent Items", make_message(from_="bob@acme.com", to="carol@client.com", subject="s")
    )
    faulty.append("bob", "Junk", make_message(from_="carol@client.com", subject="junk"))
    with serving(db, fast(imap_config)):
        eventually(lambda: attached_subjects(db) == ["s"])
        faulty.append("bob", "INBOX", make_message(from_="carol@client.com", subject="later"))
        eventually(lambda: attached_subjects(db) == ["later", "s"])  # found by polling
    assert not any("IDLE" in c.upper() for c in faulty.commands)
    assert not any("JUNK" in c.upper() for c in faulty.commands if "SELECT" in c.upper())


def test_slow_replies_time_out_and_the_sync_catches_up_when_the_server_does(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append("bob", "INBOX", *messages(3, {0}, "s"))
    faulty.faults.delay = 1.5
    config = fast(imap_config, timeout=0.5)
    with serving(db, config):
        eventually(lambda: "did not answer in 0.5 s" in (last_error(db) or ""))
        assert attached_subjects(db) == []
        faulty.faults.delay = 0.0
        eventually(lambda: attached_subjects(db) == ["s 0"])
        eventually(lambda: last_error(db) is None)


def last_error(db: Database) -> str | None:
    with db.session() as session:
        return session.scalars(select(Mailbox.last_error)).one()


def test_a_message_of_malformed_mime_is_stored_as_it_is(db, imap_config, faulty, mailbox) -> None:
    broken = (
        b"From: Carol <carol@client.com>\r\nTo: bob@acme.com\r\nSubject: broken\r\n"
        b"Message-ID: <broken@f.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"--nowhere\r\n\xff\xfe not base64 \x00\r\n--nowhere--\r\n"
    )
    faulty.append("bob", "INBOX", broken, *messages(2, {1}, "ok"))
    config = fast(imap_config)
    sync(db, config)
    assert attached_subjects(db) == ["broken", "ok 1"]
    with db.session() as session:
        from gateway.models import RawMessage

        stored = session.scalars(select(RawMessage.data)).all()
    assert broken in stored  # byte for byte


def test_a_huge_literal_fails_that_mailbox_without_allocating_it(
    db, imap_config, faulty, mailbox
) -> None:
    faulty.append("bob", "INBOX", *messages(1, {0}, "h"))
    faulty.faults.huge_literal = 8 * 1024**3  # 8 GiB announced
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = fast(imap_config, max_message_size=1024 * 1024)
    with serving(db, config):
        eventually(lambda: "over the limit" in (last_error(db) or ""))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 50
    assert mailbox_state(db) == "active"  # a server fault, not the user's: retried later


def test_gmail_labels_are_one_message_fetched_once(db, imap_config, account_id) -> None:
    server = FaultyImap(gmail=True)
    try:
        server.add_user("bob", password="pw")
        contacts(db, imap_config, account_id, "carol@client.com")
        request = MailboxRequest(
            email="bob@acme.com",
            provider="gmail",
            imap_host="127.0.0.1",
            imap_port=server.port,
            imap_security="none",
            username="bob",
        )
        vault = Vault.load(imap_config.secret_key_file)
        add_mailbox(db, imap_config, vault, request, "pw")
        raw = make_message(from_="bob@acme.com", to="carol@client.com", subject="labelled")
        # One message under three labels: INBOX, Sent Mail and All Mail.
        for folder in ("INBOX", "[Gmail]/Sent Mail", "[Gmail]/All Mail"):
            server.append("bob", folder, raw)
        report = sync_now(db, imap_config, vault, "bob@acme.com")
        assert [f.name.upper() for f in report.folders] == ["INBOX", "[GMAIL]/SENT MAIL"]
        assert report.fetched == 1 and server.faults.body_fetches == 1
        assert any("X-GM-MSGID" in c.upper() for c in server.commands)
        assert not any("ALL MAIL" in c.upper() for c in server.commands if "EXAMINE" in c.upper())
        assert count(db, Message) == 1 and sightings(db) == 1
    finally:
        server.stop()


@pytest.mark.parametrize(
    "refusal",
    [
        "[ALERT] Too many simultaneous connections. (Failure)",  # Gmail
        "[LIMIT] Rate limit hit.",  # Yahoo
        "Request is throttled. Suggested Backoff Time: 300 milliseconds",  # Microsoft
    ],
)
def test_a_throttled_sign_in_backs_off_and_is_no_wrong_password(
    db, imap_config, faulty, mailbox, refusal
) -> None:
    faulty.append("bob", "INBOX", *messages(2, {1}, "t"))
    faulty.faults.refusal = refusal
    faulty.faults.refuse_logins = 2
    before = len(faulty.commands)
    with serving(db, fast(imap_config)):
        eventually(lambda: attached_subjects(db) == ["t 1"])
        eventually(lambda: last_error(db) is None)
    assert mailbox_state(db) == "active"
    logins = [c for c in faulty.commands[before:] if " LOGIN " in c.upper()]
    assert len(logins) == 3  # refused twice, then in


def test_certificates_are_verified_unless_the_mailbox_says_otherwise(
    db, imap_config, account_id, tmp_path
) -> None:
    import trustme

    from gateway.imap.connection import MailboxError
    from tests.peers.dovecot import Dovecot, available

    if not available():
        if os.environ.get("CI"):
            pytest.fail("Dovecot is missing: .ci/run installs dovecot-imapd")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    authority = trustme.CA()  # a CA nobody trusts: as a self-signed server
    leaf = authority.issue_cert("imap.acme.test", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    server = Dovecot(tls=(cert, key)).start()
    try:
        server.add_user("bob", "pw")
        vault = Vault.load(imap_config.secret_key_file)
        request = MailboxRequest(
            email="bob@acme.com",
            imap_host="127.0.0.1",
            imap_port=server.tls_port,
            imap_security="tls",
            username="bob",
        )
        with pytest.raises(MailboxError) as refused:
            add_mailbox(db, imap_config, vault, request, "pw")
        assert refused.value.kind == "tls"
        assert "unable to get local issuer certificate" in str(refused.value)
        mailbox = add_mailbox(db, imap_config, vault, replace(request, tls_verify=False), "pw")
        assert mailbox.tls_verify is False
        assert sync_now(db, imap_config, vault, "bob@acme.com").scanned == 0
    finally:
        server.stop()
