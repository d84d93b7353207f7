"""Benchmark: a first calendar sync of N events from Radicale (the issue's target: 5,000
events in under 10 s, memory bounded by a page of events).

Radicale runs on loopback with N events written straight into its storage across
the sync window ([calendar] days_back to days_ahead); one request warms its item
cache first (reported apart: it is the server's cost, not ours). Then a gateway
with a fresh SQLite database syncs the mailbox's calendar through
inbound.calendar.caldav_sync, timed; the same sync runs again under tracemalloc for
the peak of Python memory, at N and at N/5 events, and with the window read in one
request (one page) to show what paging saves. A second sync (sync-token, nothing
changed) is timed too.

    .venv/bin/python -m bench.calendar_sync --events 5000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gateway.accounts import add_user, create_account
from gateway.config import CalendarConfig, Config, PathsConfig, SecurityConfig
from gateway.db import Database
from gateway.models import Meeting, utcnow
from gateway.vault import ensure_key_file
from inbound.calendar.caldav_sync import Access, sync_caldav
from tests.helpers.mailboxes import mailbox_row
from tests.peers.radicale import Radicale, event

TARGET = 10.0  # seconds, for 5,000 events


def events(count: int, days_back: int, days_ahead: int) -> list[tuple[str, str]]:
    start = utcnow().replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(
        days=days_back - 1
    )
    span = days_back + days_ahead - 2
    out = []
    for i in range(count):
        at = start + timedelta(days=i * span / count, hours=i % 8)
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        end = (at + timedelta(minutes=30)).strftime("%Y%m%dT%H%M%SZ")
        attendees = (
            ("bob@acme.com", "ACCEPTED"),
            (f"guest{i % 300}@client{i % 40}.example", "NEEDS-ACTION"),
        )
        out.append(
            (f"ev{i}", event(f"ev{i}@bench", stamp, end, f"Meeting {i}", attendees=attendees))
        )
    return out


def gateway(tmp: Path, name: str, page_days: int) -> tuple[Database, Config, int]:
    config = replace(
        Config(),
        paths=PathsConfig(var_dir=str(tmp / name)),
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        calendar=replace(CalendarConfig(), page_days=page_days),
    )
    ensure_key_file(config.secret_key_file)
    db = Database(config.database_url)
    db.migrate()
    with db.session() as session:
        account = create_account(session, "acme")
        add_user(session, config, account, "bob@acme.com", "Bob")
    return db, config, mailbox_row(db, config, "bob@acme.com", "secret", username="bob")


def run(
    tmp: Path, server: Radicale, name: str, page_days: int, traced: bool
) -> tuple[float, int, int, float]:
    """(seconds, meetings stored, peak traced bytes or 0, seconds of a second sync)."""
    db, config, mailbox_id = gateway(tmp, name, page_days)
    access = Access(server.url, "bob", password="secret")
    if traced:
        tracemalloc.start()
    began = time.perf_counter()
    sync_caldav(db, config, mailbox_id, access)
    took = time.perf_counter() - began
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    with db.read() as session:
        stored = session.query(Meeting).count()
    began = time.perf_counter()
    sync_caldav(db, config, mailbox_id, access)
    again = time.perf_counter() - began
    db.dispose()
    return took, stored, peak, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    defaults = CalendarConfig()
    table = Table(title=f"First CalDAV sync of {args.events} events (Radicale on loopback)")
    for column in ("run", "events", "seconds", "meetings stored", "peak Python memory"):
        table.add_column(column)
    try:
        servers = {}
        for count in (args.events, max(1, args.events // 5)):
            server = Radicale(tmp / f"radicale-{count}")
            server.set_password("bob", "secret")
            server.write_events(
                "bob", "work", events(count, defaults.days_back, defaults.days_ahead)
            )
            server.start()
            began = time.perf_counter()
            server.calendar("bob", "work").objects_by_sync_token(None, load_objects=False)
            warm = time.perf_counter() - began
            table.add_row("Radicale warms its cache", str(count), f"{warm:.1f}", "", "")
            servers[count] = server
        big, small = servers[args.events], servers[max(1, args.events // 5)]
        took, stored, _, again = run(tmp, big, "timed", defaults.page_days, traced=False)
        table.add_row(
            f"first sync ({defaults.page_days}-day pages)",
            str(args.events),
            f"{took:.2f} ({took / TARGET:.2f} of the 10 s target)",
            str(stored),
            "",
        )
        table.add_row(
            "next sync, nothing changed (sync-token)", str(args.events), f"{again:.2f}", "", ""
        )
        for label, server, count, days in (
            (
                f"first sync, traced ({defaults.page_days}-day pages)",
                big,
                args.events,
                defaults.page_days,
            ),
            (
                f"first sync, traced ({defaults.page_days}-day pages)",
                small,
                args.events // 5,
                defaults.page_days,
            ),
            ("first sync, traced (the window in one request)", big, args.events, 10_000),
        ):
            took, stored, peak, _ = run(tmp, server, f"traced-{count}-{days}", days, traced=True)
            table.add_row(label, str(count), f"{took:.2f}", str(stored), f"{peak / 2**20:.1f} MiB")
        for server in servers.values():
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Console().print(table)


if __name__ == "__main__":
    main()
