"""Benchmark: 1, 2 and 3 gateway nodes (`gateway serve` processes, each its own
[cluster] node) on one PostgreSQL, on this machine.

For each node count, each path on a fresh scratch database:
  ingest    the dropbox and pipeline roles; 10 KB messages from `--clients` SMTP
            clients spread over the nodes' dropbox ports; msg/s until all attached
  sync      the imap and pipeline roles; `--mailboxes` Dovecot mailboxes holding
            `--per-mailbox` messages from a contact each; msg/s from the nodes'
            start until all stored and attached
  delivery  the delivery role; `--messages` queued messages relayed to a sink in a
            process of its own (STARTTLS, AUTH); msg/s until all arrived
and then the takeover: with 3 nodes syncing, one killed with SIGKILL, the seconds
until the others hold all its mailboxes (against `--lease`).

Each row shows PostgreSQL round trips and queries per message (counted by a proxy
in front of PostgreSQL: bench/pg_round_trips.py), transactions per message
(pg_stat_database), and the CPU time per message of each kind of process, summed
over the nodes, with the rate every core busy would allow.

    .venv/bin/python -m bench.nodes --nodes 1 2 3 --messages 2000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_nodes   # emptied
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from bench.dropbox_ingest import client, cpu_seconds, free_port
from bench.outbound_send import Relay
from gateway.accounts import add_user, create_account, dropbox_address
from gateway.config import load_config
from gateway.contacts import add_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.mail_queue import enqueue
from gateway.models import Account, Mailbox, OutboundMessage, Sighting, User, utcnow
from gateway.tls import ensure_self_signed
from gateway.vault import Vault, ensure_key_file
from outbound.dkim_keys import generate
from outbound.hygiene import prepare
from tests.helpers.nodes import connect_dovecot
from tests.helpers.nodes import holders as held
from tests.peers.dovecot import Dovecot

GATEWAY = (sys.executable, "-m", "gateway")
STATEMENTS = os.environ.get("BENCH_STATEMENTS", "")  # a file: every statement's text
BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n" * 135


def mail(i: int, to: str = "Bob <bob@acme.example>", sender: str = "carol@client.example") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: bench {i}\r\n"
        f"Message-ID: <bench-{i}-{time.monotonic_ns()}@client.example>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{BODY}"
    ).encode()


class Proxy:
    """bench/pg_round_trips.py in a process of its own."""

    def __init__(self, target_port: int, folder: Path) -> None:
        self.file = folder / "pg-counts"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pg_round_trips", str(target_port), str(self.file)]
            + ([STATEMENTS] if STATEMENTS else []),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def counts(self) -> tuple[int, int]:
        time.sleep(0.25)  # the file is rewritten ten times a second
        round_trips, queries, _ = self.file.read_text().split()
        return int(round_trips), int(queries)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Run:
    path: str
    nodes: int
    messages: int
    seconds: float
    round_trips: float
    queries: float
    transactions: float
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


class Cluster:
    """A scratch database (emptied), its proxy, a config file the nodes share."""

    def __init__(self, url: str, folder: Path, extra: str = "") -> None:
        self.url = url
        self.folder = folder
        _recreate(url)
        self.db = Database(url)
        self.db.migrate()
        self.proxy = Proxy(make_url(url).port or 5432, folder)
        proxied = make_url(url).set(host="127.0.0.1", port=self.proxy.port)
        proxied = proxied.update_query_dict({"sslmode": "disable"})
        self.config_file = folder / "config.toml"
        self.config_file.write_text(
            f'[paths]\nvar_dir = "{folder / "var"}"\n'
            f'[database]\nurl = "{proxied.render_as_string(hide_password=False)}"\n'
            '[log]\nlevel = "warning"\n'
            '[security]\nallowed_private_networks = ["127.0.0.0/8"]\n' + extra
        )
        self.config = load_config(self.config_file, environ={})
        ensure_key_file(self.config.secret_key_file)
        ensure_self_signed(self.config.tls_cert_file, self.config.tls_key_file, "localhost")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, count: int, roles: str, env: Callable[[int], dict[str, str]]) -> None:
        """`count` nodes launched together; returns when every one is ready."""
        logs = {}
        for i in range(1, count + 1):
            name = f"node-{i}"
            logs[name] = self.folder / f"{name}.log"
            with logs[name].open("wb") as out:
                self.procs[name] = subprocess.Popen(
                    [*GATEWAY, "--config", str(self.config_file), "serve", "--roles", roles],
                    stderr=out,
                    stdout=subprocess.DEVNULL,
                    env={**os.environ, "GATEWAY_CLUSTER__NODE": name, **env(i)},
                    start_new_session=True,
                )
        deadline = time.monotonic() + 60
        for name, log in logs.items():
            while b"gateway: ready" not in log.read_bytes():
                if self.procs[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.05)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the nodes' processes, by kind (summed over the nodes),
        and of PostgreSQL's (every backend of the server: run nothing else on it)."""
        found: dict[str, float] = {}
        groups = {proc.pid for proc in self.procs.values() if proc.poll() is None}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
                if argv[0].startswith(b"postgres"):  # the server's processes
                    found["postgresql"] = found.get("postgresql", 0.0) + cpu_seconds(
                        int(stat.parent.name)
                    )
                    continue
                if int(fields[2]) not in groups:  # its process group: a node's
                    continue
                kind = "supervisor"
                if b"gateway.worker" in argv:
                    kind = argv[argv.index(b"gateway.worker") + 1].decode().split("-")[0]
                found[kind] = found.get(kind, 0.0) + cpu_seconds(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def transactions(self) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                )
                or 0
            )

    def measure(
        self, path: str, messages: int, go: Callable[[], None], done: Callable[[], bool]
    ) -> Run:
        trips, queries = self.proxy.counts()
        xacts, cpu = self.transactions(), self.cpu()
        started = time.perf_counter()
        go()
        while not done():
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"{path}: not done after 10 minutes")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        trips_after, queries_after = self.proxy.counts()
        after = self.cpu()
        used = {kind: after[kind] - cpu.get(kind, 0.0) for kind in after}
        return Run(
            path,
            len(self.procs),
            messages,
            seconds,
            (trips_after - trips) / messages,
            (queries_after - queries) / messages,
            (self.transactions() - xacts) / messages,
            {kind: used[kind] * 1000 / messages for kind in sorted(used)},
        )

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs.pop(name).wait()

    def close(self) -> None:
        for proc in self.procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(timeout=60)
        self.proxy.close()
        self.db.dispose()


def _recreate(url: str) -> None:
    parsed = make_url(url)
    name = parsed.database
    admin = parsed.set(database="postgres", drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _account(cluster: Cluster) -> tuple[int, str]:
    """The account, bob@acme.example (its dropbox address) and the contact Carol."""
    with cluster.db.session() as session:
        account = create_account(session, "bench")
        user, _ = add_user(session, cluster.config, account, "bob@acme.example")
        directory = AccountDirectory.load(session, account, cluster.config)
        add_contact(session, directory, ["carol@client.example"], "Carol", "lower")
        return account.id, dropbox_address(cluster.config, user)


def _pending(cluster: Cluster) -> int:
    with cluster.db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Sighting).where(Sighting.state == "pending")
            )
            or 0
        )


def _count(cluster: Cluster, query: object) -> int:
    with cluster.db.read() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def ingest(url: str, nodes: int, messages: int, clients: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(
            url,
            Path(tmp),
            '[dropbox]\npolicy = "trust-network"\ntrusted_networks = ["127.0.0.0/8"]\n'
            "max_connections_per_ip = 10000\nconnections_per_minute_per_ip = 1000000\n",
        )
        try:
            _, rcpt = _account(cluster)
            ports = [free_port() for _ in range(nodes)]
            cluster.start(
                nodes,
                "dropbox,pipeline",
                lambda i: {"GATEWAY_DROPBOX__LISTEN": f"127.0.0.1:{ports[i - 1]}"},
            )
            per = messages // clients

            async def load() -> None:
                await asyncio.gather(
                    *(client(ports[n % nodes], rcpt, per, f"c{n}") for n in range(clients))
                )

            stored = select(func.count()).select_from(Sighting)
            total = per * clients
            return cluster.measure(
                "ingest",
                total,
                lambda: asyncio.run(load()),
                lambda: _count(cluster, stored) >= total and not _pending(cluster),
            )
        finally:
            cluster.close()


def sync(
    url: str, nodes: int, dovecot: Dovecot, users: list[str], per_mailbox: int, lease: float
) -> tuple[Run, float | None]:
    """The sync's run; with 3 nodes, also the seconds a dead node's mailboxes took to
    be held by the others again."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(url, Path(tmp), f"[cluster]\nlease = {lease}\n")
        try:
            _account(cluster)
            vault = Vault.load(cluster.config.secret_key_file)
            with cluster.db.session() as session:
                account = session.scalars(select(User.account_id)).first()
            for i, name in enumerate(users):
                with cluster.db.session() as session:
                    owner = session.get_one(Account, account)
                    add_user(session, cluster.config, owner, f"u{i}@acme.example")
                connect_dovecot(
                    cluster.db, cluster.config, vault, dovecot, f"u{i}@acme.example", name
                )
            total = len(users) * per_mailbox
            stored = select(func.count()).select_from(Sighting).where(Sighting.source == "imap")
            # The nodes start with the mailboxes set aside, so that the figures leave
            # their start out; then every mailbox becomes active at once.
            _set_mailboxes(cluster, "reconnect_required")
            cluster.start(nodes, "imap,pipeline", lambda i: {})
            run = cluster.measure(
                "sync",
                total,
                lambda: _set_mailboxes(cluster, "active"),
                lambda: _count(cluster, stored) >= total and not _pending(cluster),
            )
            takeover = _takeover(cluster, len(users)) if nodes == 3 else None
            return run, takeover
        finally:
            cluster.close()


def _takeover(cluster: Cluster, mailboxes: int) -> float:
    """SIGKILL node-3: seconds until node-1 and node-2 hold every mailbox."""

    def holders() -> Counter[str]:
        return held(cluster.db)

    deadline = time.monotonic() + 120
    while set(holders()) != {"node-1", "node-2", "node-3"}:  # the load spread first
        if time.monotonic() > deadline:
            raise RuntimeError(f"not spread: {holders()}")
        time.sleep(0.2)
    killed = time.monotonic()
    cluster.kill("node-3")
    while not (set(holders()) == {"node-1", "node-2"} and sum(holders().values()) == mailboxes):
        if time.monotonic() - killed > 300:
            raise RuntimeError(f"not taken over: {holders()}")
        time.sleep(0.05)
    return time.monotonic() - killed


def delivery(url: str, nodes: int, messages: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "relay").mkdir()
        relay = Relay(folder / "relay")
        cluster = Cluster(
            url,
            folder,
            '[outbound]\ndefault_route = "relay"\n'
            f'relay_url = "smtp://relay:relaypw@127.0.0.1:{relay.port}"\n'
            "relay_tls_verify = false\nprocesses = 1\n",
        )
        try:
            _account(cluster)
            vault = Vault.load(cluster.config.secret_key_file)
            with cluster.db.session() as session:
                generate(
                    session, vault, session.get_one(Account, _account_id(cluster)), "acme.example"
                )
            with cluster.db.read() as session:
                user = session.scalars(select(User)).one()
                session.expunge(user)
            for i in range(messages):
                raw = mail(i, to="Carol <carol@client.example>", sender="bob@acme.example")
                enqueue(
                    cluster.db,
                    user,
                    "bob@acme.example",
                    ["carol@client.example"],
                    prepare(raw),
                    "api",
                )
            # Not due until the nodes have started (their start left out of the figures).
            _due(cluster, utcnow() + timedelta(days=1))
            cluster.start(nodes, "delivery", lambda i: {})
            sent = (
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.state == "sent")
            )
            return cluster.measure(
                "delivery",
                messages,
                lambda: _due(cluster, utcnow()),
                lambda: relay.count() >= messages and _count(cluster, sent) >= messages,
            )
        finally:
            cluster.close()
            relay.close()


def _set_mailboxes(cluster: Cluster, state: str) -> None:
    with cluster.db.session() as session:
        session.execute(update(Mailbox).values(state=state))


def _due(cluster: Cluster, when: datetime) -> None:
    with cluster.db.session() as session:
        session.execute(update(OutboundMessage).values(next_attempt_at=when))


def _account_id(cluster: Cluster) -> int:
    with cluster.db.read() as session:
        return int(session.scalars(select(User.account_id)).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=12, help="SMTP clients, over the nodes")
    parser.add_argument("--mailboxes", type=int, default=30)
    parser.add_argument("--per-mailbox", type=int, default=60)
    parser.add_argument("--lease", type=float, default=10.0, help="[cluster] lease of the sync")
    parser.add_argument("--paths", nargs="+", default=["ingest", "sync", "delivery"])
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_nodes",
        help="a scratch database: dropped and made again for every run",
    )
    args = parser.parse_args()
    console = Console(width=200)
    runs: list[Run] = []
    takeover: float | None = None
    dovecot = None
    users: list[str] = []
    if "sync" in args.paths:
        dovecot = Dovecot().start()
        for i in range(args.mailboxes):
            users.append(f"bench{i}")
            dovecot.add_user(users[-1], "pw")
            dovecot.append(
                users[-1], "INBOX", [mail(i * 1000 + n) for n in range(args.per_mailbox)]
            )
        console.log(f"Dovecot: {args.mailboxes} mailboxes of {args.per_mailbox} messages")
    try:
        for nodes in args.nodes:
            if "ingest" in args.paths:
                runs.append(ingest(args.database_url, nodes, args.messages, args.clients))
                console.log(f"ingest, {nodes} node(s): {runs[-1].rate:,.0f} msg/s")
            if "sync" in args.paths:
                assert dovecot is not None
                run, took = sync(
                    args.database_url, nodes, dovecot, users, args.per_mailbox, args.lease
                )
                runs.append(run)
                takeover = took if took is not None else takeover
                console.log(f"sync, {nodes} node(s): {run.rate:,.0f} msg/s")
            if "delivery" in args.paths:
                runs.append(delivery(args.database_url, nodes, args.messages))
                console.log(f"delivery, {nodes} node(s): {runs[-1].rate:,.0f} msg/s")
    finally:
        if dovecot is not None:
            dovecot.stop()
    cores = os.cpu_count() or 1
    table = Table(
        "path",
        "nodes",
        "messages",
        "msg/s",
        "/ 1 node",
        "PG round trips/msg",
        "queries/msg",
        "transactions/msg",
        "CPU ms/msg by process kind (all nodes, and PostgreSQL)",
        f"msg/s with {cores} cores busy",
        title="Nodes on one PostgreSQL (this machine)",
    )
    first = {r.path: r.rate for r in runs if r.nodes == min(args.nodes)}
    for r in runs:
        total = sum(r.cpu_ms.values())
        table.add_row(
            r.path,
            str(r.nodes),
            f"{r.messages:,}",
            f"{r.rate:,.0f}",
            f"{r.rate / first[r.path]:.2f}",
            f"{r.round_trips:.1f}",
            f"{r.queries:.1f}",
            f"{r.transactions:.2f}",
            " ".join(f"{k} {v:.2f}" for k, v in r.cpu_ms.items()),
            f"{cores * 1000 / total:,.0f}" if total else "-",
        )
    console.print(table)
    if takeover is not None:
        console.print(
            f"Takeover: a node killed with SIGKILL; the other two held all its mailboxes "
            f"{takeover:.1f} s later (\\[cluster] lease {args.lease:.0f} s: "
            f"{takeover / args.lease:.2f} of it)."
        )


if __name__ == "__main__":
    main()
