"""COMPRESS=DEFLATE (RFC 4978) against a Dovecot that offers it (imap_zlib): the sync
reads and writes through deflate streams, downloads fewer bytes, and IDLE still wakes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from sqlalchemy import func, select

from gateway.config import Config
from gateway.db import Database
from gateway.models import RawMessage
from inbound.imap.sync import SyncReport
from tests.helpers.imap import (
    attached_subjects,
    connect_mailbox,
    contacts,
    fill,
    initial_sync_done,
    serving,
    sync,
)
from tests.helpers.mail import make_message
from tests.helpers.wait import eventually
from tests.peers.counting_proxy import CountingProxy
from tests.peers.dovecot import Dovecot, ImapUser

_users = itertools.count(1)
TEXT = "All work and no play makes a dull message.\r\n" * 400  # 18 KB of text


@pytest.fixture(scope="module")
def compressing_dovecot(dovecot_server: Dovecot) -> Iterator[Dovecot]:
    """(After dovecot_server, which skips or fails where Dovecot is missing.)"""
    server = Dovecot(compress=True).start()
    yield server
    server.stop()


@pytest.fixture
def zlib_user(compressing_dovecot: Dovecot) -> ImapUser:
    name = f"zuser{next(_users)}"
    compressing_dovecot.add_user(name, "secret-1")
    return ImapUser(compressing_dovecot, name, "secret-1")


@pytest.fixture
def proxy(compressing_dovecot: Dovecot) -> Iterator[CountingProxy]:
    counting = CountingProxy(compressing_dovecot.port)
    yield counting
    counting.close()


def synced_through(
    proxy: CountingProxy, db: Database, config: Config, user: ImapUser
) -> tuple[SyncReport, int]:
    """Connect `user`'s mailbox through the proxy and sync it: (report, wire bytes the
    server sent during the sync)."""
    connect_mailbox(db, config, user, imap_port=proxy.port)
    before = proxy.downstream
    report = sync(db, config)
    return report, proxy.downstream - before


def test_a_compressed_sync_stores_the_same_mail_and_downloads_less(
    db: Database,
    imap_config: Config,
    account_id: int,
    zlib_user: ImapUser,
    proxy: CountingProxy,
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    fill(zlib_user, "INBOX", 30, {2, 9, 17, 28}, "z")
    zlib_user.append("INBOX", make_message(from_="carol@client.com", subject="z big", body=TEXT))
    report, wire = synced_through(proxy, db, imap_config, zlib_user)
    assert report.scanned == 31 and report.fetched == 5
    assert attached_subjects(db) == ["z 17", "z 2", "z 28", "z 9", "z big"]
    with db.read() as session:
        stored = int(session.scalar(select(func.sum(RawMessage.size))) or 0)
    # The bodies alone are bigger than all the session's bytes: they came deflated.
    assert 0 < wire < stored / 2


def test_without_compression_the_same_server_is_read_plainly(
    db: Database,
    imap_config: Config,
    account_id: int,
    zlib_user: ImapUser,
    proxy: CountingProxy,
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    zlib_user.append("INBOX", make_message(from_="carol@client.com", subject="plain", body=TEXT))
    plain = replace(imap_config, imap=replace(imap_config.imap, compress=False))
    report, wire = synced_through(proxy, db, plain, zlib_user)
    assert report.fetched == 1 and attached_subjects(db) == ["plain"]
    assert wire > len(TEXT)


def test_idle_wakes_up_on_a_compressed_session(
    db: Database, imap_config: Config, account_id: int, zlib_user: ImapUser
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    zlib_user.append("INBOX", make_message(from_="carol@client.com", subject="before"))
    connect_mailbox(db, imap_config, zlib_user)
    config = replace(imap_config, imap=replace(imap_config.imap, poll_interval=600.0))
    with serving(db, config):
        eventually(lambda: attached_subjects(db) == ["before"])
        eventually(lambda: initial_sync_done(db))
        zlib_user.append("INBOX", make_message(from_="carol@client.com", subject="after"))
        # Polling is 10 minutes away: only IDLE, read through the inflater, brings it.
        eventually(lambda: attached_subjects(db) == ["after", "before"])


def test_compression_inside_tls(
    db: Database,
    imap_config: Config,
    account_id: int,
    dovecot_server: Dovecot,
    tmp_path: Path,
    authority: trustme.CA,
) -> None:
    """Deflate runs inside TLS: bytes the TLS reader already took off the socket after
    the OK must reach the inflater, and a non-blocking TLS socket says "want read"."""
    leaf = authority.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    server = Dovecot(tls=(cert, key), compress=True).start()
    try:
        server.add_user("bob", "pw")
        user = ImapUser(server, "bob", "pw")
        contacts(db, imap_config, account_id, "carol@client.com")
        fill(user, "INBOX", 12, {1, 7}, "t")
        user.append("INBOX", make_message(from_="carol@client.com", subject="t big", body=TEXT))
        through = CountingProxy(server.tls_port)
        connect_mailbox(
            db, imap_config, user, imap_port=through.port, imap_security="tls", tls_verify=False
        )
        before = through.downstream
        assert sync(db, imap_config).fetched == 3
        assert attached_subjects(db) == ["t 1", "t 7", "t big"]
        assert through.downstream - before < len(TEXT) / 2  # deflated inside TLS
        through.close()
    finally:
        server.stop()
