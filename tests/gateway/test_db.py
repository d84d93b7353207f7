"""The database: migrations match the models; SQLite is durable (WAL, synchronous=FULL)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.db import Database
from gateway.models import Base


def test_migrations_build_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_is_wal_with_full_sync(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_migrate_twice_is_harmless(db: Database, account_id: int) -> None:
    """Migrating again changes nothing: the schema is still the models' (tables,
    columns, indexes and constraints), at the newest revision, and rows stay."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from gateway.db import alembic_config
    from gateway.models import Account, Base

    db.migrate()
    db.migrate()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, Base.metadata) == []
        head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
        assert context.get_current_revision() == head
    with db.read() as session:
        assert session.get_one(Account, account_id).name


def test_contact_lookup_uses_the_index_never_a_scan(db: Database) -> None:
    from gateway.matching import lookup

    statement = lookup(2).params(account_id=1, a0="a@x.com", a1="b@y.com")
    with db.engine.connect() as connection:
        sql = str(
            statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        )
        if db.dialect == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            plan = " ".join(str(row[-1]) for row in rows)
            # The unique (account_id, address) constraint's index answers it.
            assert "SEARCH contact_emails USING INDEX" in plan, plan
            assert "(account_id=? AND address=?)" in plan, plan
            assert "SCAN" not in plan, plan
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(str(row[0]) for row in connection.exec_driver_sql("EXPLAIN " + sql))
            assert "uq_contact_emails_account_id" in plan, plan


def _plan(db: Database, statement: Any) -> str:
    with db.engine.connect() as connection:
        sql = str(
            statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        )
        if db.dialect == "sqlite":
            return " | ".join(
                str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
            )
        connection.exec_driver_sql("SET enable_seqscan = off")  # as if the tables were big
        return " | ".join(str(row[0]) for row in connection.exec_driver_sql("EXPLAIN " + sql))


def test_known_message_lookup_searches_two_indexes_never_scans(db: Database) -> None:
    """Every new message looks for an earlier one with its identity or Message-ID:
    a scan of the account's messages would make each arrival slower than the last."""
    from gateway.pipeline.statements import SEEN

    with db.engine.connect() as connection:
        statement: Any = SEEN(connection).statement
    plan = _plan(db, statement.params(account_id=1, identity="abc", message_id="<m@x>"))
    if db.dialect == "sqlite":
        assert "(account_id=? AND identity=?)" in plan, plan
        assert "(account_id=? AND message_id_header=?)" in plan, plan
        assert "SCAN" not in plan, plan
    else:
        assert "Seq Scan" not in plan, plan
        assert "ix_messages_account_message_id" in plan, plan


def test_sqlite_writers_of_all_processes_queue_on_one_file_lock(tmp_path) -> None:
    """SQLite's busy handler sleeps up to 100 ms between tries; our writers (SMTP
    workers, the pipeline, the command line) instead queue on a flock beside the
    database, which another process can see held for as long as a write lasts."""
    import fcntl
    import os

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    lock_file = tmp_path / "x.db-writer.lock"
    other = os.open(lock_file, os.O_RDWR)  # another process's view of the lock
    try:
        with db.session(), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again after commit
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
        db.dispose()


def test_a_session_frozen_inside_a_transaction_lets_go_of_its_locks(database_url: str) -> None:
    """PostgreSQL: `idle_in_transaction` (the nodes set half of [cluster] lease) ends a
    session left idle in a transaction, so a node frozen in the middle of a fenced
    write cannot keep the lease row it locked from the node taking over."""
    import time

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from gateway.db import Database
    from gateway.leases import claim_due, fence

    frozen = Database(database_url, idle_in_transaction=2.0)
    if frozen.dialect != "postgresql":
        frozen.dispose()
        pytest.skip("SQLite has one writer at a time and no row locks")
    other = Database(database_url)
    try:
        with frozen.read() as session:
            assert session.scalar(text("SHOW idle_in_transaction_session_timeout")) == "2s"
        [(key, generation)] = claim_due(frozen, "imap", "node-a", ["7"], 1, 0.3).items()
        with Session(frozen.engine) as session:
            fence(session, "imap", key, "node-a", generation)  # locks the lease row
            time.sleep(0.6)  # node A freezes here; its lease runs out meanwhile
            assert claim_due(other, "imap", "node-b", ["7"], 1, 60) == {}  # still locked
            time.sleep(2.5)  # past idle_in_transaction_session_timeout
            assert claim_due(other, "imap", "node-b", ["7"], 1, 60) == {"7": generation + 1}
            with pytest.raises(DBAPIError):  # node A wakes: its transaction is gone
                session.execute(text("SELECT 1"))
    finally:
        frozen.dispose()
        other.dispose()
