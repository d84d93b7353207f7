"""Benchmark: copies to Sent do not hold up sending (the timing the tests leave out).

One delivery slot ([outbound] concurrency = 1), N messages queued for a user with a
connected mailbox, the relay route into a capturing SMTP sink (STARTTLS + AUTH), and
each copy to Sent made slow on purpose (--copy-seconds, standing in for the grace a
server that saves its own copy gets). Prints when the last message reached the relay
and when the last copy was made; with the copy made in the sending slot the last
message could not leave before N x copy-seconds.

    .venv/bin/python -m bench.sent_copies --messages 10 --copy-seconds 1
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import trustme
from rich.console import Console
from rich.table import Table

from gateway.accounts import add_user, create_account
from gateway.config import Config, OutboundConfig, PathsConfig, SecurityConfig
from gateway.db import Database
from gateway.vault import ensure_key_file
from outbound.delivery_role import DeliveryRole
from tests.helpers.outbound import MESSAGE, connect_sending_mailbox, queue_message
from tests.peers.smtp_sink import Sink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--copy-seconds", type=float, default=1.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    sink = Sink(tls=context, login=("relayuser", "relaypass"))
    try:
        config = replace(
            Config(),
            paths=PathsConfig(var_dir=str(tmp / "var")),
            security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
            outbound=replace(
                OutboundConfig(),
                default_route="relay",
                relay_url=f"smtp://relayuser:relaypass@127.0.0.1:{sink.port}",
                relay_tls_verify=False,
                concurrency=1,
                poll_interval=0.05,
            ),
        )
        config.var_dir.mkdir(parents=True)
        ensure_key_file(config.secret_key_file)
        db = Database(config.database_url)
        db.migrate()
        with db.session() as session:
            account = create_account(session, "bench")
            add_user(session, config, account, "bob@acme.com")
            account_id = account.id
        connect_sending_mailbox(db, config, account_id, sink, "password", "relaypass")
        for n in range(args.messages):
            raw = MESSAGE.replace(b"Our offer", f"offer {n}".encode())
            queue_message(db, config, raw, ["c@x.test"])
        copied: list[float] = []

        def slow_copy(user_id: int, raw: bytes, message_id: str, via_mailbox: bool) -> str:
            time.sleep(args.copy_seconds)
            copied.append(time.monotonic())
            return "appended"

        sent_at, copies_at = run(db, config, sink, slow_copy, copied, args.messages)
        table = Table(title=f"{args.messages} messages, one slot, copies of {args.copy_seconds} s")
        for column in ("", "seconds"):
            table.add_column(column)
        table.add_row("last message at the relay", f"{sent_at:.2f}")
        table.add_row("last copy to Sent made", f"{copies_at:.2f}")
        table.add_row(
            "copies in the slot would need at least", f"{args.messages * args.copy_seconds:.2f}"
        )
        Console().print(table)
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run(
    db: Database, config: Config, sink: Sink, copy: object, copied: list[float], count: int
) -> tuple[float, float]:
    role = DeliveryRole(db, config, sent_copy=copy)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    started = time.monotonic()
    sent_at = copies_at = 0.0

    async def serve() -> None:
        await role.start()
        await role.run(stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    deadline = started + 120
    while len(sink.received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    sent_at = time.monotonic() - started
    while len(copied) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    copies_at = time.monotonic() - started
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    return sent_at, copies_at


if __name__ == "__main__":
    main()
