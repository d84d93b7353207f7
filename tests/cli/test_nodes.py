"""Several `gateway serve` processes ("nodes", each with its own [cluster] node name)
on one database, the imap and delivery roles on each: every mailbox is held by one
node at a time and the load spreads; every queued message is delivered once; a node
killed with SIGKILL loses its mailboxes to the others within the lease; a node
frozen with SIGSTOP past its lease loses them too, and when it resumes it takes its
share back without two nodes ever holding one mailbox."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import OutboundMessage, Sighting
from tests.helpers.mail import make_message
from tests.helpers.nodes import mailboxes_on_dovecot, node, node_config, spread, stop
from tests.helpers.outbound import queue_message
from tests.helpers.pipeline import contact
from tests.helpers.wait import eventually
from tests.peers.dovecot import Dovecot
from tests.peers.smtp_sink import Sink

MAILBOXES = 12
MESSAGES = 120
LEASE = 3.0


@pytest.fixture
def cluster(
    tmp_path: Path,
    db: Database,
    imap_config: Config,
    account_id: int,
    dovecot_server: Dovecot,
    sink: Sink,
) -> Iterator[tuple[Path, Sink]]:
    """MAILBOXES mailboxes on Dovecot, a relay with STARTTLS and AUTH, and the nodes'
    config file (each node names itself by GATEWAY_CLUSTER__NODE). On PostgreSQL the
    larger test_nodes_at_scale runs instead."""
    if db.dialect == "postgresql":
        pytest.skip("on PostgreSQL, tests/cli/test_nodes_at_scale.py covers this and more")
    contact(db, imap_config, account_id, "carol@client.com")  # each mailbox's message is hers
    tag = f"{os.getpid()}-{tmp_path.name[-8:]}"
    mailboxes_on_dovecot(db, imap_config, dovecot_server, MAILBOXES, tag)
    yield node_config(tmp_path / "config.toml", imap_config, sink, LEASE), sink


@pytest.mark.slow
def test_nodes_share_the_mailboxes_and_the_queue_and_take_over_from_a_dead_one(
    db: Database, config: Config, cluster: tuple[Path, Sink]
) -> None:
    config_file, sink = cluster
    for i in range(MESSAGES):
        raw = make_message(from_="bob@acme.com", to="carol@client.test", subject=f"queued {i}")
        queue_message(db, config, raw, ["carol@client.test"])
    nodes = {name: node(config_file, name) for name in ("node-1", "node-2", "node-3")}
    try:
        eventually(lambda: spread(db, {"node-1", "node-2", "node-3"}, MAILBOXES), 60)

        def delivered() -> bool:
            with db.read() as session:
                states = session.scalars(select(OutboundMessage.state)).all()
            return len(states) == MESSAGES and set(states) == {"sent"}

        eventually(delivered, 90)
        subjects = Counter(str(message_from_bytes(r.data)["Subject"]) for r in sink.received)
        assert len(subjects) == MESSAGES and set(subjects.values()) == {1}  # once each
        eventually(lambda: _sightings(db) == MAILBOXES, 60)  # each mailbox's message

        # A node dies: its mailboxes go to the others within the lease.
        stop(nodes.pop("node-3"), signal.SIGKILL)
        eventually(lambda: spread(db, {"node-1", "node-2"}, MAILBOXES), 30)

        # A node freezes past its lease: the other takes everything over; when it
        # resumes, its runners find their leases lost, and it takes its share again.
        os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGSTOP)
        try:
            eventually(lambda: spread(db, {"node-1"}, MAILBOXES), 30)
        finally:
            os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGCONT)
        eventually(lambda: spread(db, {"node-1", "node-2"}, MAILBOXES), 60)

        # A node joins: the load spreads again.
        nodes["node-4"] = node(config_file, "node-4")
        eventually(lambda: spread(db, {"node-1", "node-2", "node-4"}, MAILBOXES), 60)
        assert _sightings(db) == MAILBOXES  # nothing stored twice through all that
    finally:
        for proc in nodes.values():
            stop(proc)


def _sightings(db: Database) -> int:
    """The mailboxes' messages stored (one each), not the sent mail's sightings."""
    with db.read() as session:
        return len(session.scalars(select(Sighting.id).where(Sighting.source == "imap")).all())
