"""Benchmark: match and attach messages against accounts of 1k .. 1M contacts.

Prints a table of messages/s for
  - dict:     a bare in-memory dict lookup of the same addresses (the baseline),
  - match:    the gateway's indexed contact lookup (gateway.matching),
  - pipeline: the whole pipeline (parse + match + thread + attach + commit) on
              stored 10 KB messages, in batches of [pipeline] batch_size.

Run by hand (it resets the database it is given):
    .venv/bin/python -m bench.match_attach --contacts 1000 1000000 \
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from gateway.accounts import add_user, create_account
from gateway.config import Config, DatabaseConfig, PipelineConfig
from gateway.db import Database
from gateway.matching import match_contacts
from gateway.models import Base, Keep, Source
from gateway.parsing import parse
from gateway.pipeline import Pipeline
from gateway.store import Arrival, accept_in

WARM_UP = 200
BODY_LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"


def contact_address(i: int) -> str:
    return f"person{i}@company{i % 5000}.example"


def make_messages(n: int, contacts: int, rng: random.Random) -> list[bytes]:
    body = BODY_LINE * (10_000 // len(BODY_LINE))
    out = []
    for i in range(n):
        sender = contact_address(rng.randrange(contacts))
        cc = f"{contact_address(rng.randrange(contacts))}, stranger{i}@nowhere.example"
        raw = (
            f"From: Someone <{sender}>\r\nTo: Bob <bob@acme.example>\r\nCc: {cc}\r\n"
            f"Subject: Quote {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <bench{i}.{rng.getrandbits(32)}@company.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        )
        out.append(raw.encode())
    return out


def reset(db: Database) -> None:
    with db.engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.migrate()


def load_contacts(db: Database, account_id: int, n: int) -> None:
    """Bulk-load n contacts with one address each (COPY on PostgreSQL)."""
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.dialect == "postgresql":
            with cur.copy(
                "COPY contacts (id, account_id, name, source, created_at) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    copy.write_row((i, account_id, f"Person {i}", "import", "2026-01-01"))
            with cur.copy(
                "COPY contact_emails (account_id, contact_id, address, display) FROM STDIN"
            ) as copy:
                for i in range(1, n + 1):
                    address = contact_address(i - 1)
                    copy.write_row((account_id, i, address, address))
            cur.execute("SELECT setval('contacts_id_seq', %s)", (n,))
        else:
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO contacts (id, account_id, name, source, created_at) "
                "VALUES (?, ?, ?, 'import', '2026-01-01 00:00:00')",
                [(i, account_id, f"Person {i}") for i in range(1, n + 1)],
            )
            cur.executemany(
                "INSERT INTO contact_emails (account_id, contact_id, address, display) "
                "VALUES (?, ?, ?, ?)",
                [
                    (account_id, i, contact_address(i - 1), contact_address(i - 1))
                    for i in range(1, n + 1)
                ],
            )
            cur.execute("COMMIT")
        raw.commit()
    finally:
        raw.close()
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE contacts"))
            conn.execute(text("ANALYZE contact_emails"))


def run_case(url: str, contacts: int, messages: int, batch: int, console: Console) -> list[str]:
    rng = random.Random(contacts)
    config = replace(
        Config(),
        database=DatabaseConfig(url=url),
        pipeline=PipelineConfig(batch_size=batch),
    )
    db = Database(url)
    reset(db)
    with db.session() as session:
        account = create_account(session, "bench")
        user, _ = add_user(session, config, account, "bob@acme.example")
        account_id, user_id = account.id, user.id
    started = time.perf_counter()
    load_contacts(db, account_id, contacts)
    console.log(
        f"{db.dialect}: loaded {contacts:,} contacts in {time.perf_counter() - started:.1f}s"
    )

    raws = make_messages(messages + WARM_UP, contacts, rng)
    warm_up, raws = raws[:WARM_UP], raws[WARM_UP:]
    addresses = [
        [a.normalized for header in p.addresses.values() for a in header]
        for p in (parse(r) for r in raws)
    ]
    # Baseline: a bare dict of the same addresses.
    table = {contact_address(i): i + 1 for i in range(contacts)}
    t0 = time.perf_counter()
    hits_dict = sum(1 for addrs in addresses for a in addrs if a in table)
    dict_rate = messages / (time.perf_counter() - t0)
    del table

    t0 = time.perf_counter()
    hits_db = 0
    with db.session() as session:
        for addrs in addresses:
            hits_db += len(match_contacts(session, account_id, addrs))
    match_rate = messages / (time.perf_counter() - t0)
    assert hits_db <= hits_dict

    pipeline = Pipeline(db, config)
    for chunk in (warm_up, raws):  # the first fills the statement caches, untimed
        with db.session() as session:
            for raw in chunk:
                accept_in(session, raw, Arrival(user_id, Source.IMPORT, Keep.ALWAYS))
        if chunk is warm_up:
            pipeline.run_pending()
    t0 = time.perf_counter()
    done = pipeline.run_pending()
    pipe_rate = len(done) / (time.perf_counter() - t0)
    assert len(done) == messages and all(o.contact_ids for o in done)
    db.dispose()
    return [
        db.dialect,
        f"{contacts:,}",
        f"{dict_rate:,.0f}",
        f"{match_rate:,.0f}",
        f"{dict_rate / match_rate:,.0f}x",
        f"{pipe_rate:,.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100, help="[pipeline] batch_size")
    parser.add_argument("--pg-url", help="also run on this PostgreSQL database (it is reset)")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = [] if args.no_sqlite else [f"sqlite:///{Path(tmp) / 'bench.db'}"]
        if args.pg_url:
            urls.append(args.pg_url)
        for url in urls:
            for n in args.contacts:
                if url.startswith("sqlite"):
                    for suffix in ("", "-wal", "-shm"):
                        Path(tmp, "bench.db" + suffix).unlink(missing_ok=True)
                rows.append(run_case(url, n, args.messages, args.batch, console))
    out = Table(
        "db",
        "contacts",
        "dict msg/s (baseline)",
        "match msg/s",
        "dict/match",
        "pipeline msg/s (10 KB)",
        title=f"match and attach, {args.messages:,} messages per row",
    )
    for row in rows:
        out.add_row(*row)
    console.print(out)


if __name__ == "__main__":
    main()
