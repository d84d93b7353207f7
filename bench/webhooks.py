"""Benchmark: webhook deliveries per second to a fast local receiver, signed.

N events are written to the outbox; the `webhooks` role (in this process, as
`gateway serve` runs it) fans them out and delivers each to one endpoint, a
receiver in another process that verifies every signature with the
standardwebhooks package and answers 204. Prints deliveries/s from the first
delivery to the last recorded, per [webhooks] per_endpoint setting, and the
receiver's count of good and bad signatures. The issue's target: 500/s.

    .venv/bin/python -m bench.webhooks --events 5000 [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select

from admin.webhook_role import WebhooksRole
from gateway.accounts import create_account
from gateway.config import Config, SecurityConfig, load_config
from gateway.db import Database
from gateway.models import Event, WebhookDelivery, WebhookState, utcnow
from gateway.vault import Vault, ensure_key_file
from gateway.webhooks import add_endpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(tmp: Path, url: str | None) -> tuple[Config, Database]:
    config_file = tmp / "config.toml"
    config_file.write_text('[paths]\nvar_dir = "var"\n', encoding="utf-8")
    config = load_config(config_file, environ={})
    if url:
        config = replace(config, database=replace(config.database, url=url))
    config = replace(config, security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)))
    ensure_key_file(config.secret_key_file)
    db = Database(config.database_url)
    if url:  # a scratch database: start empty
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    db.migrate()
    return config, db


def run_once(config: Config, db: Database, events: int, per_endpoint: int) -> dict[str, float]:
    port = free_port()
    with db.session() as session:
        account = create_account(session, f"bench{port}")
        endpoint, secret = add_endpoint(
            session,
            config,
            Vault.load(config.secret_key_file),
            account.id,
            f"http://127.0.0.1:{port}/hook",
        )
        account_id = account.id
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_receiver", str(port), secret],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    now = utcnow()
    with db.session() as session:
        session.execute(
            insert(Event),
            [
                {
                    "account_id": account_id,
                    "kind": "message.created",
                    "payload": {"message_id": i, "contact_ids": [1, 2], "source": "dropbox"},
                    "created_at": now,
                }
                for i in range(events)
            ],
        )
    settings = replace(
        config.webhooks, per_endpoint=per_endpoint, concurrency=max(16, per_endpoint)
    )
    role = WebhooksRole(db, replace(config, webhooks=settings), owner=f"bench/{port}")

    def delivered() -> int:
        with db.read() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        WebhookDelivery.endpoint_id == endpoint.id,
                        WebhookDelivery.state == WebhookState.DELIVERED.value,
                    )
                )
                or 0
            )

    async def drive() -> float:
        stop = asyncio.Event()
        await role.start()
        task = asyncio.create_task(role.run(stop))
        started = time.perf_counter()
        deadline = started + 600
        while await asyncio.to_thread(delivered) < events and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        role.wake()
        await task
        return elapsed

    elapsed = asyncio.run(drive())
    receiver.terminate()
    out, _ = receiver.communicate(timeout=30)
    words = out.split()
    got = dict(zip(words[0::2], (int(w) for w in words[1::2]), strict=False))
    done = delivered()
    return {
        "per_endpoint": per_endpoint,
        "delivered": done,
        "seconds": elapsed,
        "rate": done / elapsed if elapsed else 0.0,
        "verified": got.get("verified", 0),
        "bad": got.get("bad", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--per-endpoint", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--database-url", default="", help="PostgreSQL (scratch: emptied)")
    args = parser.parse_args()
    table = Table(title=f"webhook deliveries, {args.events} events, one endpoint")
    for column in (
        "database",
        "per_endpoint",
        "delivered",
        "seconds",
        "deliveries/s",
        "x target 500/s",
        "signatures ok",
        "bad",
    ):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        config, db = prepare(Path(tmp), args.database_url or None)
        kind = "PostgreSQL" if args.database_url else "SQLite"
        try:
            for per_endpoint in args.per_endpoint:
                r = run_once(config, db, args.events, per_endpoint)
                table.add_row(
                    kind,
                    str(per_endpoint),
                    str(int(r["delivered"])),
                    f"{r['seconds']:.1f}",
                    f"{r['rate']:.0f}",
                    f"{r['rate'] / 500:.2f}",
                    str(int(r["verified"])),
                    str(int(r["bad"])),
                )
        finally:
            db.dispose()
    Console().print(table)


if __name__ == "__main__":
    main()
