"""The database: migrations match the models; SQLite is durable (WAL, synchronous=FULL)."""

from __future__ import annotations

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


def test_migrate_twice_is_harmless(db: Database) -> None:
    db.migrate()
    db.migrate()


def test_contact_lookup_uses_the_index_never_a_scan(db: Database) -> None:
    from gateway.matching import _LOOKUP

    statement = _LOOKUP.params(account_id=1, addresses=["a@x.com", "b@y.com"])
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
