"""Several `gateway serve` nodes on one database, for the cluster tests: their config,
starting and stopping them, who holds which mailbox, and Dovecot's own count of the
IMAP sessions each user had open at once (from its log)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from gateway.accounts import add_user, get_account
from gateway.config import Config
from gateway.db import Database
from gateway.models import Lease
from gateway.vault import Vault, ensure_key_file
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.helpers.mail import make_message
from tests.helpers.serve import start
from tests.peers.dovecot import Dovecot
from tests.peers.smtp_sink import Sink

LOGIN = re.compile(r"imap-login: Info: Login: user=<([^>]+)>.*session=<([^>]+)>")
LOGOUT = re.compile(r"imap\(([^)]+)\)<\d+><([^>]+)>: Info: Disconnected")


def mailboxes_on_dovecot(
    db: Database, config: Config, dovecot: Dovecot, count: int, tag: str
) -> list[str]:
    """`count` users n<i>@acme.com, each with a mailbox on `dovecot` holding one
    message from carol@client.com; their Dovecot user names."""
    ensure_key_file(config.secret_key_file)
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        for i in range(count):
            add_user(session, config, get_account(session), f"n{i}@acme.com", f"N{i}")
    names = []
    for i in range(count):
        name = f"node{i}-{tag}"
        dovecot.add_user(name, "pw")
        dovecot.append(name, "INBOX", [make_message(from_="carol@client.com", to=f"n{i}@acme.com")])
        connect_dovecot(db, config, vault, dovecot, f"n{i}@acme.com", name)
        names.append(name)
    return names


def connect_dovecot(
    db: Database, config: Config, vault: Vault, dovecot: Dovecot, email: str, name: str
) -> None:
    """The user `email` connects Dovecot's user `name` (password "pw") as a mailbox."""
    request = MailboxRequest(
        email=email,
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="none",
        username=name,
    )
    add_mailbox(db, config, vault, request, "pw")


def node_config(path: Path, config: Config, sink: Sink, lease: float) -> Path:
    """The config file every node reads (each names itself by GATEWAY_CLUSTER__NODE):
    the shared database, the relay route to `sink`, short polls and lease."""
    path.write_text(
        f'[paths]\nvar_dir = "{config.paths.var_dir}"\n'
        f'[database]\nurl = "{config.database_url}"\n'
        '[security]\nallowed_private_networks = ["127.0.0.0/8"]\n'
        f"[cluster]\nlease = {lease}\n"
        "[imap]\npoll_interval = 1.0\n"
        '[outbound]\ndefault_route = "relay"\n'
        f'relay_url = "smtp://relayuser:relaypass@127.0.0.1:{sink.port}"\n'
        "relay_tls_verify = false\npoll_interval = 0.2\n"
    )
    return path


LOGS: dict[int, Path] = {}  # a node's process id -> its serve log


def node(config_file: Path, name: str) -> subprocess.Popen[bytes]:
    """A node running the imap and delivery roles, named `name`."""
    proc = start(config_file, "--roles", "imap,delivery", env={"GATEWAY_CLUSTER__NODE": name})
    LOGS[proc.pid] = max(config_file.parent.glob("serve-*.log"))  # the newest: its own
    return proc


def log_of(proc: subprocess.Popen[bytes]) -> str:
    return LOGS[proc.pid].read_text(errors="replace")


def stop(proc: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    os.killpg(os.getpgid(proc.pid), how)
    proc.wait(timeout=60)


def holders(db: Database, kind: str = "imap") -> Counter[str]:
    """How many mailboxes each node holds now."""
    with db.read() as session:
        found = session.scalars(
            select(Lease.holder).where(Lease.kind == kind, Lease.holder.is_not(None))
        ).all()
    return Counter(str(h).split("/")[0] for h in found)


def held_by(db: Database, name: str, kind: str = "imap") -> set[str]:
    """The keys (mailbox ids) node `name` holds now."""
    with db.read() as session:
        found = session.scalars(
            select(Lease.key).where(Lease.kind == kind, Lease.holder.like(f"{name}/%"))
        ).all()
    return set(found)


def spread(db: Database, nodes: set[str], total: int) -> bool:
    """Every mailbox held, by these nodes only, none with two more than another."""
    counted = holders(db)
    return (
        set(counted) == nodes
        and sum(counted.values()) == total
        and max(counted.values()) - min(counted.values()) <= 1
    )


def open_sessions(log: str) -> dict[str, set[str]]:
    """Dovecot's IMAP sessions open at the end of `log`: user -> session ids."""
    opened: dict[str, set[str]] = {}
    for line in log.splitlines():
        if found := LOGIN.search(line):
            opened.setdefault(found[1], set()).add(found[2])
        elif found := LOGOUT.search(line):
            opened.get(found[1], set()).discard(found[2])
    return {user: ids for user, ids in opened.items() if ids}


def overlaps(log: str, users: Iterable[str], ignore: Iterable[str] = ()) -> list[str]:
    """The log lines of logins that found another session of the same user open."""
    ignored, wanted = set(ignore), set(users)
    opened: dict[str, set[str]] = {user: set() for user in wanted}
    found_lines = []
    for line in log.splitlines():
        if (found := LOGIN.search(line)) and found[1] in wanted and found[2] not in ignored:
            if opened[found[1]]:
                found_lines.append(f"{line} (open: {sorted(opened[found[1]])})")
            opened[found[1]].add(found[2])
        elif (found := LOGOUT.search(line)) and found[1] in wanted:
            opened[found[1]].discard(found[2])
    return found_lines
