"""Benchmark: the initial IMAP sync of a Dovecot mailbox, against two baselines.

A throwaway Dovecot (tests.peers.dovecot) gets a mailbox of N messages of 5-20 KB,
about 8% of them from contacts. In the same run, each in a process of its own:
  - full fetch: a bare imapclient script fetching every message (BODY.PEEK[] in
                batches of 500), the baseline;
  - mbsync:     isync's mbsync pulling the whole mailbox into a Maildir;
  - gateway:    the gateway's whole initial sync (header scan, match, fetch the
                matched bodies, store, checkpoint) on SQLite; then, separately,
                the pipeline attaching what was stored.
Prints seconds, messages/s, ratios against the full fetch, bytes the server sent
(Dovecot's own count) and peak RSS of each process.

With --idle N it instead connects N mailboxes and runs the imap role until all
are in IDLE, then prints the role's RSS.

    .venv/bin/python -m bench.imap_sync --messages 20000
    .venv/bin/python -m bench.imap_sync --idle 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.imap_mailboxes import (
    CONTACTS,
    cold_cache,
    contact,
    fill_maildir,
    log_size,
    run_measured,
    server_bytes,
)
from tests.peers.dovecot import Dovecot

WIRE = """
def wire(sock):
    # struct tcp_info: tcpi_bytes_received (Linux 4.1+), what the server put on the wire
    import socket, struct
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", info, 128)[0]
"""

FULL_FETCH = (
    WIRE
    + """
import sys
from imapclient import IMAPClient
c = IMAPClient("127.0.0.1", port={port}, ssl=False, timeout=120)
c.login("{user}", "pw")
c.select_folder("INBOX", readonly=True)
uids = c.search(["ALL"])
total = 0
for start in range(0, len(uids), 500):
    for item in c.fetch(uids[start:start + 500], ["BODY.PEEK[]"]).values():
        total += len(item[b"BODY[]"])
received = wire(c._imap.sock)
c.logout()
print(len(uids), total, received)
"""
)

GATEWAY = (
    WIRE
    + """
import json, sys, time
from gateway.config import load_config
from gateway.db import Database
from gateway.vault import Vault
from gateway.imap.session import open_session
from gateway.imap.connection import close
from inbound.imap.sync import MailboxSync
from gateway.pipeline import Pipeline
config = load_config("{config}")
db = Database(config.database_url)
vault = Vault.load(config.secret_key_file)
t0 = time.perf_counter()
client = open_session(db, config, vault, 1)
report = MailboxSync(db, config, 1).run(client)
received = wire(client._imap.sock)
close(client)
t1 = time.perf_counter()
done = Pipeline(db, config).run_pending()
t2 = time.perf_counter()
print(json.dumps({{"sync": t1 - t0, "pipeline": t2 - t1, "scanned": report.scanned,
                  "fetched": report.fetched, "attached": sum(1 for o in done if o.contact_ids),
                  "wire": received}}))
"""
)


def prepare_gateway(
    tmp: Path, port: int, user: str, batch: int | None = None, compress: bool = True
) -> Path:
    from gateway.accounts import add_user, create_account
    from gateway.config import load_config
    from gateway.contacts import add_contact
    from gateway.db import Database
    from gateway.directory import AccountDirectory
    from gateway.vault import Vault, ensure_key_file
    from inbound.imap.mailboxes import MailboxRequest, add_mailbox

    tmp.mkdir(parents=True, exist_ok=True)
    config_file = tmp / "config.toml"
    config_file.write_text(
        '[paths]\nvar_dir = "var"\n[security]\nallowed_private_networks = ["127.0.0.0/8"]\n'
        '[log]\nlevel = "warning"\n[imap]\nwindow_days = 3650\n'
        + f"compress = {'true' if compress else 'false'}\n"
        + (f"batch_size = {batch}\n" if batch else "")
    )
    config = load_config(config_file, environ={})
    ensure_key_file(config.secret_key_file)
    db = Database(config.database_url)
    db.migrate()
    with db.session() as session:
        account = create_account(session, "bench")
        add_user(session, config, account, "bob@acme.example", "Bob")
        directory = AccountDirectory.load(session, account, config)
        for i in range(CONTACTS):
            add_contact(session, directory, [contact(i)], f"P {i}", "lower")
    request = MailboxRequest(
        email="bob@acme.example",
        imap_host="127.0.0.1",
        imap_port=port,
        imap_security="none",
        username=user,
    )
    add_mailbox(db, config, Vault.load(config.secret_key_file), request, "pw")
    db.dispose()
    return config_file


def mbsync(tmp: Path, port: int, user: str) -> str:
    (tmp / "mbsync").mkdir(exist_ok=True)
    rc = tmp / "mbsyncrc"
    rc.write_text(
        textwrap.dedent(
            f"""\
            IMAPAccount bench
            Host 127.0.0.1
            Port {port}
            User {user}
            Pass pw
            SSLType None
            AuthMechs LOGIN

            IMAPStore remote
            Account bench

            MaildirStore local
            Path {tmp}/mbsync/
            Inbox {tmp}/mbsync/INBOX

            Channel bench
            Far :remote:
            Near :local:
            Patterns INBOX
            Create Near
            Sync Pull
            SyncState *
            """
        )
    )
    return str(rc)


def sync_benchmark(messages: int, share: float, batch: int | None, console: Console) -> None:
    server = Dovecot(compress=True).start()  # offers COMPRESS=DEFLATE, as Gmail does
    tmp = Path(tempfile.mkdtemp())
    try:
        user = "bench"
        server.add_user(user, "pw")
        # The test Dovecot logs every byte of a session to disk (rawlog) for the
        # tests that count commands; here it would tax the bigger downloads most.
        shutil.rmtree(server.root / "mail" / user / "dovecot.rawlog")
        started = time.perf_counter()
        involved = fill_maildir(server, user, messages, share, seed=1)
        with server.client(user) as c:  # let Dovecot index the Maildir, untimed
            c.select_folder("INBOX", readonly=True)
        console.log(f"filled {messages:,} messages in {time.perf_counter() - started:.0f} s")
        # (contender, seconds, payload bytes by Dovecot's count, wire bytes, RSS, notes)
        rows: list[tuple[str, float, int, int | None, int, str]] = []

        mark = log_size(server)
        cold_cache(server, user)
        seconds, rss, out = run_measured(FULL_FETCH.format(port=server.port, user=user))
        count, _, received = (int(x) for x in out.split())
        assert count == messages
        base = seconds
        rows.append(
            (
                "full fetch (imapclient)",
                seconds,
                server_bytes(server, user, mark),
                received,
                rss,
                "",
            )
        )

        if shutil.which("mbsync"):
            mark = log_size(server)
            cold_cache(server, user)
            code = (
                "import subprocess,sys;"
                f"r=subprocess.run(['mbsync','-c',{mbsync(tmp, server.port, user)!r},'-a'],"
                "capture_output=True);print(r.stderr.decode()[-500:]);sys.exit(r.returncode)"
            )
            seconds, rss, _ = run_measured(code)
            rows.append(
                ("mbsync (isync)", seconds, server_bytes(server, user, mark), None, rss, "")
            )
        else:
            console.log("mbsync not found (apt-get install isync): skipped")

        for compress in (True, False):
            config = prepare_gateway(tmp / f"gw-{compress}", server.port, user, batch, compress)
            mark = log_size(server)
            cold_cache(server, user)
            seconds, rss, out = run_measured(
                GATEWAY.format(config=config), env={"PYTHONPATH": str(Path.cwd())}
            )
            report = json.loads(out)
            note = (
                f"{report['scanned']:,} scanned, {report['fetched']:,} fetched of {involved:,} "
                f"involving contacts; pipeline then {report['pipeline']:.1f} s"
            )
            name = "gateway initial sync" + ("" if compress else ", COMPRESS off")
            payload = server_bytes(server, user, mark)
            rows.append((name, report["sync"], payload, report["wire"], rss, note))

        table = Table(
            "contender",
            "seconds",
            "msg/s",
            "time / full fetch",
            "payload MiB (server's count)",
            "wire MiB (client's TCP count)",
            "wire / full fetch",
            "peak RSS MiB",
            "notes",
            title=f"initial sync of {messages:,} messages (5-20 KB, {share:.0%} from contacts)",
        )
        full_wire = rows[0][3] or 1
        for name, secs, payload, wire, peak, notes in rows:
            table.add_row(
                name,
                f"{secs:.1f}",
                f"{messages / secs:,.0f}",
                f"{secs / base:.2f}",
                f"{payload / 2**20:,.1f}",
                "-" if wire is None else f"{wire / 2**20:,.1f}",
                "-" if wire is None else f"{wire / full_wire:.1%}",
                f"{peak / 1024:,.0f}",
                notes,
            )
        console.print(table)
        console.print(
            "payload: what Dovecot counts it sent, before COMPRESS; wire: bytes the client's "
            "socket received (TCP_INFO), after it. mbsync may compress too (isync 1.4+)."
        )
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


IDLE_ROLE = """
import asyncio, json, resource, sys, time
from gateway.config import load_config
from gateway.db import Database
from gateway.role import RoleContext, run_roles
from gateway.registry import build_roles
config = load_config("{config}")
db = Database(config.database_url)
roles = build_roles(["imap"], RoleContext(db, config))
role = roles["imap"]
async def main():
    stop = asyncio.Event()
    task = asyncio.create_task(run_roles(roles, stop))
    deadline = time.monotonic() + {timeout}
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        if len(role.runners) >= {count} and all(r.idling for r, _ in role.runners.values()):
            break
    idling = sum(1 for r, _ in role.runners.values() if r.idling)
    rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])
    print(json.dumps({{"idling": idling, "rss_kib": rss}}), flush=True)
    stop.set()
    await task
asyncio.run(main())
"""


def idle_benchmark(count: int, console: Console) -> None:
    from gateway.accounts import add_user, get_account
    from gateway.config import load_config
    from gateway.db import Database
    from gateway.models import Mailbox, MailboxState
    from gateway.vault import Vault

    server = Dovecot(compress=True).start()  # compressed sessions, as with Gmail
    tmp = Path(tempfile.mkdtemp())
    try:
        for i in range(count):
            server.add_user(f"idle{i}", "pw")
        config_file = prepare_gateway(tmp, server.port, "idle0")
        config = load_config(config_file, environ={})
        db = Database(config.database_url)
        vault = Vault.load(config.secret_key_file)
        with db.session() as session:
            account = get_account(session)
            for i in range(1, count):
                user, _ = add_user(session, config, account, f"u{i}@acme.example", f"U{i}")
                session.add(
                    Mailbox(
                        account_id=account.id,
                        user_id=user.id,
                        email=f"u{i}@acme.example",
                        provider="other",
                        imap_host="127.0.0.1",
                        imap_port=server.port,
                        imap_security="none",
                        username=f"idle{i}",
                        credentials=vault.encrypt("pw"),
                        state=MailboxState.ACTIVE.value,
                    )
                )
        db.dispose()
        code = IDLE_ROLE.format(config=config_file, count=count, timeout=300)
        seconds, peak, out = run_measured(code, env={"PYTHONPATH": str(Path.cwd())})
        result = json.loads(out)
        table = Table("mailboxes", "in IDLE", "RSS MiB (all in IDLE)", "peak RSS MiB", "seconds")
        table.add_row(
            str(count),
            str(result["idling"]),
            f"{result['rss_kib'] / 1024:.0f}",
            f"{peak / 1024:.0f}",
            f"{seconds:.0f}",
        )
        console.print(table)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=0.08, help="share from contacts")
    parser.add_argument("--idle", type=int, metavar="N", help="measure N mailboxes in IDLE")
    parser.add_argument("--batch", type=int, help="[imap] batch_size (default: the config's)")
    args: Any = parser.parse_args()
    console = Console(width=200)
    if args.idle:
        idle_benchmark(args.idle, console)
    else:
        sync_benchmark(args.messages, args.share, args.batch, console)


if __name__ == "__main__":
    main()
