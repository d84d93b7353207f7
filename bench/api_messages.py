"""Benchmark: GET /api/v1/messages?contact_id=... at 1,000,000 messages.

Builds (once, kept with --keep DIR) an account with 10,000 contacts and N messages
(default 1,000,000): one contact is on 5% of them, the others share the rest, each
message names one or two contacts and was seen by the user (a sighting each).
Then `gateway serve --roles web` serves it, and a bounded httpx load (a few
thousand requests, C at a time) asks for pages of 50:

    contact (big)       the 5% contact's newest page
    contact (big) p2    its second page, by cursor
    contact (small)     a random other contact's newest page
    member (big)        the big contact's page for a member (sightings checked)
    no filter           the account's newest page
    /healthz            the baseline: an HTTP round trip and SELECT 1

and prints p50/p99 latency and requests/s of each. The issue's target: p99 under
50 ms for a page of 50 at 1M messages.

    .venv/bin/python -m bench.api_messages [--messages 1000000] [--requests 2000] [--workers 2]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_api] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, insert, select

from gateway.accounts import add_user, create_account, set_password
from gateway.config import load_config
from gateway.db import Database
from gateway.models import (
    Account,
    Contact,
    ContactEmail,
    Message,
    MessageContact,
    RawMessage,
    Sighting,
    User,
)
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file

CONTACTS = 10_000
CHUNK = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp: Path, url: str, port: int) -> Path:
    config_file = tmp / "config.toml"
    database = f'[database]\nurl = "{url}"\n' if url else ""
    config_file.write_text(
        f'{database}[web]\nlisten = "127.0.0.1:{port}"\n[log]\nlevel = "warning"\n',
        encoding="utf-8",
    )
    return config_file


def build(db: Database, messages: int, config_file: Path) -> None:
    config = load_config(config_file, environ={})
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        account = create_account(session, "bench")
        user, _ = add_user(session, config, account, "bob@acme.example", "Bob")
        set_password(session, config, "bob@acme.example", "bob's bench password")
        account_id, user_id = account.id, user.id
        raw_id = session.execute(
            insert(RawMessage).returning(RawMessage.id),
            {"sha256": "0" * 64, "size": 10, "data": b"Subject: x\r\n\r\nx\r\n"},
        ).scalar_one()
    with db.session() as session:
        session.execute(
            insert(Contact),
            [
                {"account_id": account_id, "name": f"Contact {i}", "source": "import"}
                for i in range(CONTACTS)
            ],
        )
        ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        session.execute(
            insert(ContactEmail),
            [
                {
                    "account_id": account_id,
                    "contact_id": c,
                    "address": f"c{c}@client.example",
                    "display": f"c{c}@client.example",
                }
                for c in ids
            ],
        )
    big, others = ids[0], ids[1:]
    rng = random.Random(7)
    started = time.perf_counter()
    for start in range(0, messages, CHUNK):
        count = min(CHUNK, messages - start)
        with db.session() as session:
            first = (session.scalar(select(func.max(Message.id))) or 0) + 1
            rows, links, seen = [], [], []
            for n in range(count):
                i = start + n
                message_id = first + n
                rows.append(
                    {
                        "id": message_id,
                        "account_id": account_id,
                        "owner_user_id": user_id,
                        "raw_message_id": raw_id,
                        "identity": f"id{i}",
                        "message_id_header": f"<m{i}@bench.example>",
                        "subject": f"Message {i}",
                        "direction": "incoming",
                        "from_addresses": [{"name": "C", "email": "c@client.example"}],
                        "to_addresses": [{"name": "Bob", "email": "bob@acme.example"}],
                        "cc_addresses": [],
                        "bcc_addresses": [],
                        "flags": [],
                    }
                )
                named = [big] if rng.random() < 0.05 else []
                named += rng.sample(others, 2 - len(named) if rng.random() < 0.5 else 1)
                for contact in named:
                    links.append({"message_id": message_id, "contact_id": contact, "role": "from"})
                seen.append(
                    {
                        "account_id": account_id,
                        "user_id": user_id,
                        "raw_message_id": raw_id,
                        "message_id": message_id,
                        "source": "import",
                        "source_key": f"bench:{i}",
                        "keep": "always",
                        "state": "done",
                    }
                )
            session.execute(insert(Message), rows)
            session.execute(insert(MessageContact), links)
            session.execute(insert(Sighting), seen)
        done = start + count
        rate = done / (time.perf_counter() - started)
        print(f"\r  built {done:,} of {messages:,} messages ({rate:,.0f}/s)", end="", flush=True)
    print()
    if db.dialect == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
    else:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


async def measure(
    url: str, headers: dict[str, str], paths: list[str], concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = list(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            path = queue.pop()
            began = time.perf_counter()
            answer = await client.get(path, headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await client.get("/healthz")  # warm the connections
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, len(paths) / elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="", help="PostgreSQL (scratch: emptied)")
    parser.add_argument("--keep", default="", help="a directory to build in once and reuse")
    parser.add_argument(
        "--workers", type=int, default=1, help="[serve] workers: processes serving HTTP"
    )
    args = parser.parse_args()
    holder = None if args.keep else tempfile.TemporaryDirectory()
    tmp = Path(args.keep or holder.name)  # type: ignore[union-attr]
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_file = write_config(tmp, args.database_url, port)
    config = load_config(config_file, environ={})
    db = Database(config.database_url)
    built = tmp / f"built-{args.messages}-{'pg' if args.database_url else 'sqlite'}"
    if not built.exists():
        if args.database_url:
            with db.engine.begin() as connection:
                connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        db.migrate()
        build(db, args.messages, config_file)
        built.touch()
    with db.session() as session:
        account = session.scalars(select(Account)).one()
        token = create_account_token(session, account.id, ["read"]).token
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id).limit(CONTACTS)))
        total = session.scalar(select(func.count()).select_from(Message))
        user_id = session.scalars(select(User.id)).one()
    db.dispose()
    log = tmp / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "--config",
                str(config_file),
                "serve",
                "--roles",
                "web",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GATEWAY_SERVE__WORKERS": str(args.workers)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text())
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        big = contacts[0]
        first = httpx.get(
            f"{url}/api/v1/messages",
            params={"contact_id": big, "limit": 50},
            headers=headers,
            timeout=30,
        ).json()
        cursor = first["next_cursor"]
        member = member_cookie(url)
        rng = random.Random(3)
        n = args.requests
        scenarios: list[tuple[str, list[str], dict[str, Any]]] = [
            ("contact (big)", [f"/api/v1/messages?contact_id={big}&limit=50"] * n, headers),
            (
                "contact (big) p2",
                [f"/api/v1/messages?contact_id={big}&limit=50&cursor={cursor}"] * n,
                headers,
            ),
            (
                "contact (small)",
                [
                    f"/api/v1/messages?contact_id={rng.choice(contacts[1:])}&limit=50"
                    for _ in range(n)
                ],
                headers,
            ),
            (
                "member (big)",
                [f"/api/v1/messages?contact_id={big}&limit=50"] * n,
                {"Cookie": member},
            ),
            ("no filter", ["/api/v1/messages?limit=50"] * n, headers),
            ("/healthz", ["/healthz"] * n, {}),
        ]
        kind = "PostgreSQL" if args.database_url else "SQLite"
        table = Table(
            title=f"GET /api/v1/messages, pages of 50, {total:,} messages, {kind}, "
            f"{args.concurrency} at a time, {args.workers} web process(es)"
        )
        for column in (
            "query",
            "requests",
            "p50 ms",
            "p99 ms",
            "req/s",
            "p99 / target 50 ms",
            "p99 / healthz p99",
        ):
            table.add_column(column, justify="right")
        results = []
        gc.collect()
        gc.freeze()  # the load generator's own full collections are not the server's latency
        for name, paths, hdrs in scenarios:
            latencies, rate = asyncio.run(measure(url, hdrs, paths, args.concurrency))
            results.append((name, latencies, rate))
        base = pct(results[-1][1], 99)
        for name, latencies, rate in results:
            p99 = pct(latencies, 99)
            table.add_row(
                name,
                str(len(latencies)),
                f"{pct(latencies, 50):.1f}",
                f"{p99:.1f}",
                f"{rate:.0f}",
                f"{p99 / 50:.2f}",
                f"{p99 / base:.1f}",
            )
        Console().print(table)
        del user_id
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        if holder is not None:
            holder.cleanup()


def member_cookie(url: str) -> str:
    """bob@acme.example signed in (a member): his session cookie."""
    import re

    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post(
            "/sign-in",
            data={
                "email": "bob@acme.example",
                "password": "bob's bench password",
                "csrf_token": token[1],
            },
        )
        assert answer.status_code == 303, answer.text
        return f"gateway_session={client.cookies['gateway_session']}"


if __name__ == "__main__":
    main()
