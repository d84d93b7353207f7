"""Several `gateway serve` processes ("nodes", each with its own [cluster] node name)
on one database, the imap and delivery roles on each: every mailbox is held by one
node at a time and the load spreads; every queued message is delivered once; a node
killed with SIGKILL loses its mailboxes to the others within the lease; a node
frozen with SIGSTOP past its lease loses them too, and when it resumes it takes its
share back without two nodes ever holding one mailbox."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.accounts import add_user, get_account
from gateway.config import Config
from gateway.db import Database
from gateway.models import Lease, OutboundMessage, Sighting
from gateway.vault import Vault, ensure_key_file
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.helpers.mail import make_message
from tests.helpers.outbound import queue_message
from tests.helpers.pipeline import contact
from tests.helpers.serve import start
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
    config file (each node names itself by GATEWAY_CLUSTER__NODE)."""
    config = imap_config
    ensure_key_file(config.secret_key_file)
    vault = Vault.load(config.secret_key_file)
    contact(db, config, account_id, "carol@client.com")  # each mailbox's message is hers
    with db.session() as session:
        for i in range(MAILBOXES):
            add_user(session, config, get_account(session), f"n{i}@acme.com", f"N{i}")
    for i in range(MAILBOXES):
        name = f"node{i}-{os.getpid()}-{tmp_path.name[-8:]}"
        dovecot_server.add_user(name, "pw")
        dovecot_server.append(
            name, "INBOX", [make_message(from_="carol@client.com", to=f"n{i}@acme.com")]
        )
        request = MailboxRequest(
            email=f"n{i}@acme.com",
            imap_host="127.0.0.1",
            imap_port=dovecot_server.port,
            imap_security="none",
            username=name,
        )
        add_mailbox(db, config, vault, request, "pw")
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[paths]\nvar_dir = "{config.paths.var_dir}"\n'
        f'[database]\nurl = "{config.database_url}"\n'
        '[security]\nallowed_private_networks = ["127.0.0.0/8"]\n'
        f"[cluster]\nlease = {LEASE}\n"
        "[imap]\npoll_interval = 1.0\n"
        '[outbound]\ndefault_route = "relay"\n'
        f'relay_url = "smtp://relayuser:relaypass@127.0.0.1:{sink.port}"\n'
        "relay_tls_verify = false\npoll_interval = 0.2\n"
    )
    yield config_file, sink


def node(config_file: Path, name: str) -> subprocess.Popen[bytes]:
    return start(config_file, "--roles", "imap,delivery", env={"GATEWAY_CLUSTER__NODE": name})


def holders(db: Database) -> Counter[str]:
    with db.read() as session:
        found = session.scalars(
            select(Lease.holder).where(Lease.kind == "imap", Lease.holder.is_not(None))
        ).all()
    return Counter(str(h).split("/")[0] for h in found)


def spread(db: Database, nodes: set[str]) -> bool:
    """Every mailbox held, by these nodes only, none of them with two more than another."""
    counted = holders(db)
    return (
        set(counted) == nodes
        and sum(counted.values()) == MAILBOXES
        and max(counted.values()) - min(counted.values()) <= 1
    )


def stop(proc: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    with_group = os.getpgid(proc.pid)
    os.killpg(with_group, how)
    proc.wait(timeout=60)


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
        eventually(lambda: spread(db, {"node-1", "node-2", "node-3"}), 60)

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
        eventually(lambda: spread(db, {"node-1", "node-2"}), 30)

        # A node freezes past its lease: the other takes everything over; when it
        # resumes, its runners find their leases lost, and it takes its share again.
        os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGSTOP)
        try:
            eventually(lambda: spread(db, {"node-1"}), 30)
        finally:
            os.killpg(os.getpgid(nodes["node-2"].pid), signal.SIGCONT)
        eventually(lambda: spread(db, {"node-1", "node-2"}), 60)

        # A node joins: the load spreads again.
        nodes["node-4"] = node(config_file, "node-4")
        eventually(lambda: spread(db, {"node-1", "node-2", "node-4"}), 60)
        assert _sightings(db) == MAILBOXES  # nothing stored twice through all that
    finally:
        for proc in nodes.values():
            stop(proc)


def _sightings(db: Database) -> int:
    """The mailboxes' messages stored (one each), not the sent mail's sightings."""
    with db.read() as session:
        return len(session.scalars(select(Sighting.id).where(Sighting.source == "imap")).all())
