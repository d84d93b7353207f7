"""The group committer: concurrent writes share transactions; one bad write fails
only its own caller; nothing is reported stored before its commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Connection, func, insert, select

from gateway.db import Database
from gateway.group_commit import GroupCommitter
from gateway.models import Event, table_of, utcnow

EVENTS = table_of(Event)


def add_event(account_id: int, kind: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(
            insert(EVENTS).values(account_id=account_id, kind=kind, payload={}, created_at=utcnow())
        )
        return kind

    return work


def kinds(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(EVENTS.c.kind).order_by(EVENTS.c.id)))


class CountingBegin:
    """db.connection that counts the transactions opened, and can hold the writer
    inside its first transaction until released (so that others queue up)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.transactions = 0
        self.hold = threading.Event()
        self.inside = threading.Event()

    @contextmanager
    def __call__(self) -> Iterator[Connection]:
        self.transactions += 1
        with self.db.connection() as connection:
            self.inside.set()
            self.hold.wait(10)
            yield connection


def test_callers_waiting_together_share_one_transaction(db: Database, account_id: int) -> None:
    begin = CountingBegin(db)
    committer = GroupCommitter(begin)
    try:
        first = committer.submit(add_event(account_id, "first"))
        assert begin.inside.wait(10)  # the writer holds the first unit's transaction
        rest = [committer.submit(add_event(account_id, f"e{n}")) for n in range(10)]
        begin.hold.set()
        assert first.result(10) == "first"
        assert [f.result(10) for f in rest] == [f"e{n}" for n in range(10)]
    finally:
        committer.close()
    # the first alone, then the ten that queued meanwhile in one transaction
    assert begin.transactions == 2
    assert kinds(db) == ["first", *(f"e{n}" for n in range(10))]


def test_a_failing_unit_fails_only_its_own_caller(db: Database, account_id: int) -> None:
    begin = CountingBegin(db)
    committer = GroupCommitter(begin)

    def broken(connection: Connection) -> None:
        raise ValueError("bad unit")

    try:
        blocker = committer.submit(add_event(account_id, "first"))
        assert begin.inside.wait(10)
        good = committer.submit(add_event(account_id, "good"))
        bad = committer.submit(broken)
        after = committer.submit(add_event(account_id, "after"))
        begin.hold.set()
        blocker.result(10)
        assert good.result(10) == "good"
        assert after.result(10) == "after"
        with pytest.raises(ValueError, match="bad unit"):
            bad.result(10)
    finally:
        committer.close()
    assert kinds(db) == ["first", "good", "after"]  # each once: the failed batch left nothing


def test_nothing_is_reported_before_the_commit(db: Database, account_id: int) -> None:
    committed: list[bool] = []

    @contextmanager
    def begin() -> Iterator[Connection]:
        with db.connection() as connection:
            yield connection
        committed.append(True)

    committer = GroupCommitter(begin)
    try:

        def work(connection: Connection) -> bool:
            add_event(account_id, "x")(connection)
            return bool(committed)

        assert committer.call(work) is False  # ran inside the transaction ...
        assert committed == [True]  # ... and the caller heard of it after the commit
    finally:
        committer.close()


def test_callers_on_the_event_loop_and_in_threads(db: Database, account_id: int) -> None:
    committer = GroupCommitter(db.connection)

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                *(committer.run(add_event(account_id, f"a{n}")) for n in range(20)),
                *(
                    asyncio.to_thread(committer.call, add_event(account_id, f"t{n}"))
                    for n in range(20)
                ),
            )
        )

    try:
        results = asyncio.run(main())
    finally:
        committer.close()
    assert sorted(results) == sorted([f"a{n}" for n in range(20)] + [f"t{n}" for n in range(20)])
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(EVENTS)) == 40


def test_closing_commits_what_is_queued_then_refuses_more(db: Database, account_id: int) -> None:
    committer = GroupCommitter(db.connection)
    futures = [committer.submit(add_event(account_id, f"e{n}")) for n in range(5)]
    committer.close()
    assert [f.result(10) for f in futures] == [f"e{n}" for n in range(5)]
    with pytest.raises(RuntimeError, match="closed"):
        committer.submit(add_event(account_id, "late"))
