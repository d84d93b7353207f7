"""`gateway mailbox ...` against a real Dovecot."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.leases import claim_due, finish, holder_of
from gateway.models import Mailbox, utcnow
from tests.helpers.cli import Run
from tests.helpers.mail import make_message
from tests.peers.dovecot import ImapUser


@pytest.fixture
def imap_cli(config_file: Path, initialized: Run, imap_user: ImapUser) -> Run:
    with config_file.open("a", encoding="utf-8") as handle:
        handle.write('[security]\nallowed_private_networks = ["127.0.0.0/8"]\n')
    assert initialized("contacts", "add", "carol@client.com", "--name", "Carol").code == 0
    return initialized


def add(run: Run, user: ImapUser, password: str, monkeypatch: pytest.MonkeyPatch, *extra: str):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return run(
        "mailbox",
        "add",
        "bob@acme.com",
        "--imap-host",
        "127.0.0.1",
        "--imap-port",
        str(user.server.port),
        "--imap-security",
        "none",
        "--username",
        user.name,
        "--password-stdin",
        *extra,
    )


def test_add_sync_status_reconnect_remove(
    imap_cli: Run, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = add(imap_cli, imap_user, "wrong", monkeypatch)
    assert refused.code == 1
    assert "refused the user name or password" in refused.err

    added = add(imap_cli, imap_user, imap_user.password, monkeypatch)
    assert added.code == 0, added.err
    assert "connected bob@acme.com" in added.out

    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="hi"))
    imap_user.append("INBOX", make_message(from_="someone@else.example", subject="other"))
    synced = imap_cli("mailbox", "sync", "bob@acme.com")
    assert synced.code == 0, synced.err
    assert "inbox 'INBOX': 2 scanned, 1 matched, 1 fetched" in synced.out

    status = imap_cli("mailbox", "status", "--json").json()
    assert status[0]["state"] == "active"
    inbox = next(f for f in status[0]["folders"] if f["role"] == "inbox")
    assert (inbox["scanned"], inbox["fetched"], inbox["initial_sync"]) == (2, 1, "done")
    assert "scanned" in imap_cli("mailbox", "status").out
    audited = imap_cli("mailbox", "audit", "bob@acme.com")
    assert "inbox 'INBOX': 2 on the server within the window, 1 involving contacts, missing 0" in (
        audited.out
    ), audited.err
    assert "missing 0 (audit " in imap_cli("mailbox", "status").out

    imap_user.server.set_password(imap_user.name, "new-secret")
    failed = imap_cli("mailbox", "sync", "bob@acme.com")
    assert failed.code == 1 and "refused" in failed.err
    assert imap_cli("mailbox", "list", "--json").json()[0]["state"] == "reconnect_required"

    monkeypatch.setattr("sys.stdin", io.StringIO("new-secret\n"))
    assert imap_cli("mailbox", "reconnect", "bob@acme.com", "--password-stdin").code == 0
    assert imap_cli("mailbox", "list", "--json").json()[0]["state"] == "active"

    removed = imap_cli("mailbox", "remove", "bob@acme.com")
    assert removed.code == 0 and "its mail stays" in removed.out
    assert imap_cli("mailbox", "list", "--json").json() == []
    listed = imap_cli("messages", "list", "--json")
    assert [m["subject"] for m in listed.json()] == ["hi"]


def test_one_way_sync_needs_a_higher_plan(
    imap_cli: Run, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = add(imap_cli, imap_user, imap_user.password, monkeypatch, "--sync", "one_way")
    assert result.code == 1
    assert "one-way sync needs the pro or enterprise plan" in result.err


def test_oauth2_tokens_are_given_as_json_on_stdin(
    imap_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.peers.imap_faults import FaultyImap

    server = FaultyImap()
    try:
        server.add_user("bob@acme.com", token="tok-1")
        server.append("bob@acme.com", "INBOX", make_message(from_="carol@client.com", subject="o"))
        args = ["mailbox", "add", "bob@acme.com", "--provider", "gmail", "--imap-host"]
        args += ["127.0.0.1", "--imap-port", str(server.port), "--imap-security", "none"]
        monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
        bad = imap_cli(*args, "--oauth2")
        assert bad.code == 1 and "expected JSON" in bad.err
        monkeypatch.setattr("sys.stdin", io.StringIO('{"access_token": "tok-1"}'))
        added = imap_cli(*args, "--oauth2")
        assert added.code == 0, added.err
        synced = imap_cli("mailbox", "sync", "bob@acme.com")
        assert "1 fetched" in synced.out, synced.err
    finally:
        server.stop()


@pytest.mark.parametrize("workers", ["0", "1"])
def test_gateway_serve_syncs_a_mailbox_and_stops_cleanly(
    imap_cli: Run,
    imap_user: ImapUser,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
) -> None:
    """The imap role as `gateway serve` runs it: in the one process, or in the
    background worker beside the pipeline; new mail arrives by IDLE."""
    import signal
    import time

    from sqlalchemy import select

    from gateway.config import load_config
    from gateway.db import Database
    from gateway.models import Message, MessageContact
    from tests.helpers.serve import start

    assert add(imap_cli, imap_user, imap_user.password, monkeypatch).code == 0
    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="first"))
    db = Database(load_config(config_file).database_url)

    def attached() -> list[str]:
        with db.session() as session:
            return sorted(session.scalars(select(Message.subject).join(MessageContact).distinct()))

    def wait_for(subjects: list[str]) -> None:
        deadline = time.monotonic() + 30
        while attached() != subjects:
            assert time.monotonic() < deadline, attached()
            time.sleep(0.05)

    proc = start(
        config_file, env={"GATEWAY_SERVE__WORKERS": workers, "GATEWAY_IMAP__POLL_INTERVAL": "600"}
    )
    try:
        wait_for(["first"])
        imap_user.append("INBOX", make_message(from_="carol@client.com", subject="second"))
        wait_for(["first", "second"])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        db.dispose()


def test_a_foreground_sync_holds_the_mailboxs_lease_and_waits_for_no_node(
    imap_cli: Run, imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    """`gateway mailbox sync` and `audit` take the mailbox's lease as a node's runner
    does: refused while a node syncs it (naming the node), given back after."""
    assert add(imap_cli, imap_user, imap_user.password, monkeypatch).code == 0
    [mailbox_id] = [str(m) for m in _mailbox_ids(db)]
    held = claim_due(db, "imap", "node-2/background", [mailbox_id], 1, 60)
    for verb in ("sync", "audit"):
        refused = imap_cli("mailbox", verb, "bob@acme.com")
        assert refused.code == 1 and "being synced by node-2/background" in refused.err
    assert finish(db, "imap", "node-2/background", mailbox_id, held[mailbox_id], utcnow())
    synced = imap_cli("mailbox", "sync", "bob@acme.com")
    assert synced.code == 0, synced.err
    assert holder_of(db, "imap", mailbox_id) is None  # given back: a node takes it at once
    assert claim_due(db, "imap", "node-2/background", [mailbox_id], 1, 60)


def _mailbox_ids(db: Database) -> list[int]:
    with db.read() as session:
        return list(session.scalars(select(Mailbox.id)))
