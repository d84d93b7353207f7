"""`gateway serve` as a process: clean stops on signals, and no loss or duplicate
when it is killed with SIGKILL in the middle of finishing messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.accounts import get_user
from gateway.config import load_config
from gateway.db import Database
from gateway.models import Event, Keep, Message, MessageContact, Sighting, Source
from gateway.store import Arrival, MessageStore
from tests.cli.conftest import Run
from tests.mail import make_message

READY_TIMEOUT = 30.0


def start(
    config_file: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `gateway serve`; its log goes to a file (a full pipe would block it)."""
    log = config_file.with_name(f"serve-{time.monotonic_ns()}.log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_file), "serve", *extra],
            stderr=sink,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if b"gateway: ready" in log.read_bytes():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise AssertionError(f"gateway serve did not start: {log.read_text(errors='replace')}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signals(initialized: Run, config_file: Path, sig: signal.Signals) -> None:
    proc = start(config_file)
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == 0


def test_unknown_role_is_refused(initialized: Run) -> None:
    result = initialized("serve", "--roles", "pipeline,teleport")
    assert result.code == 2 and "unknown role 'teleport'" in result.err


def stored_pending(
    initialized: Run, config_file: Path, total: int, body: str = "x\r\n"
) -> Database:
    """`total` dropbox messages from carol@client.com (a contact) stored for Bob, none
    finished yet, as after a crash between 250 and the pipeline."""
    initialized("contacts", "add", "carol@client.com")
    config = load_config(config_file)
    db = Database(config.database_url)
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    for i in range(total):
        store.accept(
            make_message(message_id=f"<k{i}@x>", body=body),
            Arrival(bob, Source.DROPBOX, Keep.ALWAYS, source_key=f"smtp-{i}"),
        )
    return db


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as session:
        pending = session.scalar(
            select(func.count()).select_from(Sighting).where(Sighting.state == "pending")
        )
        messages = session.scalar(select(func.count()).select_from(Message))
        created = session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "message.created")
        )
    return int(pending or 0), int(messages or 0), int(created or 0)


def test_sigkill_while_finishing_loses_and_duplicates_nothing(
    initialized: Run, config_file: Path
) -> None:
    total = 1000
    db = stored_pending(initialized, config_file, total, body="x" * 2000 + "\r\n")
    # One message per transaction, so that a kill lands between many commits.
    env = {"GATEWAY_PIPELINE__BATCH_SIZE": "1"}
    kills = 0
    for _ in range(3):
        before = counts(db)[0]
        proc = start(config_file, env=env)
        deadline = time.monotonic() + 60
        while counts(db)[0] == before and time.monotonic() < deadline:
            time.sleep(0.005)
        if counts(db)[0] == 0:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            break
        proc.kill()  # SIGKILL in the middle of the work
        proc.wait(timeout=20)
        kills += 1
    proc = start(config_file)
    deadline = time.monotonic() + 120
    while counts(db)[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    pending, messages, created = counts(db)
    assert kills >= 1
    assert (pending, messages, created) == (0, total, total)
    with db.session() as session:
        links = session.scalar(select(func.count()).select_from(MessageContact))
    assert links == total
    db.dispose()


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_a_killed_pipeline_child_is_replaced(initialized: Run, config_file: Path) -> None:
    total = 600
    db = stored_pending(initialized, config_file, total)
    env = {"GATEWAY_PIPELINE__BATCH_SIZE": "1", "GATEWAY_PIPELINE__OWN_PROCESS": "true"}
    proc = start(config_file, env=env)
    deadline = time.monotonic() + 60
    while counts(db)[0] == total and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = children_of(proc.pid)
    assert killed, "the pipeline runs in a child process"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while counts(db)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert counts(db) == (0, total, total)
    db.dispose()
