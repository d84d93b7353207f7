"""Three `gateway serve` nodes (the imap and delivery roles) on this machine's
PostgreSQL, at the size the several-nodes page promises: 60 mailboxes on one Dovecot
and a queue of 2,000 messages to a local relay.

- Every mailbox is synced by one node at a time: Dovecot's own log never shows two
  IMAP sessions of one user open at once (but a frozen process's, which sync
  nothing), and each message is stored once.
- Every queued message reaches the relay once.
- A node killed with SIGKILL in the middle of sending: its mailboxes and the
  messages it was sending are taken over within the lease; only those messages
  may reach the relay twice (SMTP cannot tell), none is lost.
- A node frozen with SIGSTOP past its lease writes nothing when it resumes, and
  takes its share again; a node that joins takes its share.
- PostgreSQL restarted under the running nodes: they reconnect and carry on, the
  mail that arrived meanwhile synced once, the mail queued after it sent once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.accounts import get_user
from gateway.config import Config
from gateway.db import Database
from gateway.mail_queue import enqueue_in
from gateway.models import Mailbox, OutboundMessage, RawMessage, Sighting
from outbound.hygiene import prepare
from tests.helpers.mail import make_message
from tests.helpers.nodes import (
    held_by,
    log_of,
    mailboxes_on_dovecot,
    node,
    node_config,
    open_sessions,
    overlaps,
    spread,
    stop,
)
from tests.helpers.pipeline import contact
from tests.helpers.wait import eventually
from tests.peers.dovecot import Dovecot
from tests.peers.smtp_sink import Sink

MAILBOXES = 60
MESSAGES = 2000
LEASE = 8.0
TAKEOVER = LEASE + 10.0  # the lease, a role's pass, and the runner's first session
CLUSTER = os.environ.get("PG_CLUSTER", "15 main")

pytestmark = pytest.mark.slow


def _on_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("nodes share one PostgreSQL (GATEWAY_TEST_DATABASE_URL)")


def test_three_nodes_sixty_mailboxes_two_thousand_messages_and_every_failure(
    tmp_path: Path,
    db: Database,
    imap_config: Config,
    account_id: int,
    dovecot_server: Dovecot,
    sink: Sink,
) -> None:
    _on_postgresql(db)
    global _started
    _started = time.monotonic()
    contact(db, imap_config, account_id, "carol@client.com")
    users = mailboxes_on_dovecot(db, imap_config, dovecot_server, MAILBOXES, tmp_path.name[-8:])
    config_file = node_config(tmp_path / "config.toml", imap_config, sink, LEASE)
    dovecot_log = dovecot_server.root / "dovecot.log"
    _queue(db, imap_config, "first", MESSAGES)
    nodes = {name: node(config_file, name) for name in ("node-1", "node-2", "node-3")}
    try:
        # 1. The load spreads; everything is synced and sent once.
        eventually(lambda: spread(db, {"node-1", "node-2", "node-3"}, MAILBOXES), 60)
        eventually(_all_sent(db, MESSAGES), 300)
        assert set(_received(sink, "first").values()) == {1}
        assert len(_received(sink, "first")) == MESSAGES
        eventually(lambda: _stored(db) == MAILBOXES, 60)

        _mark("1. spread, 2,000 sent once, synced")
        # 2. A node dies while sending (the relay is slow: its claims are in flight).
        sink.hang = 1.0
        _queue(db, imap_config, "second", 300)
        eventually(lambda: bool(_sending(db, "node-3")), 60)
        in_flight = _sending(db, "node-3")
        killed = time.monotonic()
        stop(nodes.pop("node-3"), signal.SIGKILL)
        sink.hang = 0.0
        eventually(lambda: spread(db, {"node-1", "node-2"}, MAILBOXES), TAKEOVER)
        eventually(lambda: _states(db, in_flight) == {"sent"}, TAKEOVER)
        assert time.monotonic() - killed < TAKEOVER
        eventually(_all_sent(db, MESSAGES + 300), 120)
        second = _received(sink, "second")
        assert len(second) == 300  # nothing lost
        twice = {subject for subject, n in second.items() if n > 1}
        assert twice <= _subjects(db, in_flight)
        for user in users:  # new mail, synced by the nodes that took over
            dovecot_server.deliver(user, make_message(from_="carol@client.com"))
        eventually(lambda: _stored(db) == 2 * MAILBOXES, 60)

        _mark("2. SIGKILL taken over")
        # 3. A node freezes past its lease, then wakes: it writes nothing of what it
        # held (fenced), and takes its share again.
        frozen_boxes = held_by(db, "node-2")
        assert frozen_boxes
        frozen_sessions = _sessions_of(db, dovecot_log.read_text(), frozen_boxes)
        os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGSTOP)
        try:
            eventually(lambda: spread(db, {"node-1"}, MAILBOXES), TAKEOVER + 10)
        finally:
            os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGCONT)
        eventually(lambda: spread(db, {"node-1", "node-2"}, MAILBOXES), 60)
        assert _stored(db) == 2 * MAILBOXES  # nothing stored twice
        woke = log_of(nodes["node-2"])  # it noticed, and stopped those syncs
        assert "its lease was lost" in woke or "was not renewed in time" in woke

        _mark("3. SIGSTOP/SIGCONT")
        # 4. A node joins: the load spreads again.
        nodes["node-4"] = node(config_file, "node-4")
        eventually(lambda: spread(db, {"node-1", "node-2", "node-4"}, MAILBOXES), 90)

        _mark("4. a node joined")
        # 5. PostgreSQL restarts under the running nodes; mail arrives meanwhile.
        _pg_ctl("stop")
        try:
            for user in users:
                dovecot_server.deliver(user, make_message(from_="carol@client.com"))
            time.sleep(1.0)
        finally:
            _pg_ctl("start")
        eventually(lambda: _stored(db) == 3 * MAILBOXES, 90)
        _queue(db, imap_config, "third", 200)
        eventually(_all_sent(db, MESSAGES + 500), 120)
        assert set(_received(sink, "third").values()) == {1}
        assert len(_received(sink, "third")) == 200
        eventually(lambda: spread(db, {"node-1", "node-2", "node-4"}, MAILBOXES), 60)
        assert all(proc.poll() is None for proc in nodes.values())

        _mark("5. PostgreSQL restarted")
        # Through all of it, Dovecot never saw one user's mail synced by two sessions.
        assert overlaps(dovecot_log.read_text(), users, ignore=frozen_sessions) == []
    finally:
        for proc in nodes.values():
            stop(proc)


_started = time.monotonic()


def _mark(phase: str) -> None:
    """When each phase ended (pytest shows it with -s, or when the test fails)."""
    print(f"{time.monotonic() - _started:6.1f} s  {phase}")


def _queue(db: Database, config: Config, batch: str, count: int) -> None:
    """`count` messages queued as the CRM would, in one transaction."""
    with db.read() as session:
        user = get_user(session, config, "bob@acme.com")
        session.expunge(user)
    with db.connection() as connection:
        for i in range(count):
            raw = make_message(from_="bob@acme.com", to="carol@client.test", subject=f"{batch} {i}")
            enqueue_in(connection, user, "bob@acme.com", ["carol@client.test"], prepare(raw), "api")


def _all_sent(db: Database, count: int) -> Callable[[], bool]:
    def check() -> bool:
        with db.read() as session:
            rows = session.execute(
                select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state)
            )
            states = {state: n for state, n in rows}
        return states == {"sent": count}

    return check


def _received(sink: Sink, batch: str) -> Counter[str]:
    subjects = (str(message_from_bytes(r.data)["Subject"]) for r in list(sink.received))
    return Counter(s for s in subjects if s.startswith(f"{batch} "))


def _sending(db: Database, name: str) -> set[int]:
    with db.read() as session:
        return set(
            session.scalars(
                select(OutboundMessage.id).where(
                    OutboundMessage.state == "sending",
                    OutboundMessage.claimed_by.like(f"{name}/%"),
                )
            )
        )


def _states(db: Database, ids: set[int]) -> set[str]:
    with db.read() as session:
        return set(
            session.scalars(select(OutboundMessage.state).where(OutboundMessage.id.in_(ids)))
        )


def _subjects(db: Database, ids: set[int]) -> set[str]:
    with db.read() as session:
        raws = session.scalars(
            select(RawMessage.data)
            .join(OutboundMessage, OutboundMessage.raw_message_id == RawMessage.id)
            .where(OutboundMessage.id.in_(ids))
        ).all()
    return {str(message_from_bytes(raw)["Subject"]) for raw in raws}


def _stored(db: Database) -> int:
    """The mailboxes' messages stored (not the sent mail's sightings)."""
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Sighting).where(Sighting.source == "imap")
            )
            or 0
        )


def _sessions_of(db: Database, log: str, mailbox_ids: set[str]) -> set[str]:
    """The IMAP sessions open now of these mailboxes (a node's about to be frozen)."""
    with db.read() as session:
        users = set(
            session.scalars(
                select(Mailbox.username).where(Mailbox.id.in_([int(m) for m in mailbox_ids]))
            )
        )
    return {s for user, ids in open_sessions(log).items() if user in users for s in ids}


def _pg_ctl(action: str) -> None:
    version, name = CLUSTER.split()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        timeout=60,
    )
