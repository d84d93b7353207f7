"""Database engines and sessions: SQLite (WAL, synchronous=FULL) or PostgreSQL.

`Database.session()` is the one way code touches the database: a short
transaction committed on success and rolled back on error. Sessions never
span network I/O. `migrate()` brings the schema to the newest Alembic head.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, Table, create_engine, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import Executable

from gateway.prepared import Prepared

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, idle_in_transaction: float | None = None
    ) -> None:
        """`idle_in_transaction` (PostgreSQL): seconds after which the server ends a
        session of this process left idle inside a transaction, releasing its row
        locks: a node frozen in the middle of a write (a long pause, a partition)
        cannot keep the lease rows it locked from the other nodes past that."""
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            args = {"timeout": 30, "isolation_level": None, "check_same_thread": False}
            self.engine: Engine = create_engine(url, echo=echo, connect_args=args)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin_immediate)
            # Readers never take the write lock: WAL lets them run beside a writer.
            self.read_engine: Engine = create_engine(url, echo=echo, connect_args=args)
            event.listen(self.read_engine, "connect", _sqlite_pragmas)
            event.listen(self.read_engine, "begin", _sqlite_begin_deferred)
            # SQLite has one writer; threads of this process queue here instead of
            # sleeping in SQLite's busy handler (which backs off up to 100 ms).
            self._write_lock: WriterLock | None = WriterLock(
                f"{parsed.database}-writer.lock"
                if parsed.database and parsed.database != ":memory:"
                else None
            )
        else:
            options: dict[str, str] = {}
            if idle_in_transaction:
                ms = max(1000, int(idle_in_transaction * 1000))
                options["options"] = f"-c idle_in_transaction_session_timeout={ms}"
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True, connect_args=options)
            self.read_engine = self.engine
            self._write_lock = None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on error."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """session() without the ORM, for hot paths built on prebuilt Core statements."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction (on SQLite it never waits for writers)."""
        with self._read_sessions() as session:
            yield session  # closing the session rolls the read transaction back

    def migrate(self, revision: str = "head") -> None:
        with self.engine.begin() as connection:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()


class WriterLock:
    """One writer at a time among the threads and processes that use a SQLite file.

    SQLite has one write lock; a writer that finds it taken sleeps in the busy
    handler (backing off up to 100 ms) before trying again. Queueing on a
    flock(2) of a file beside the database instead wakes the next writer as
    soon as the lock is free, so the gateway's processes (SMTP workers, the
    pipeline, the command line) share the database without idle sleeps.
    """

    def __init__(self, path: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600) if path else None

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL + synchronous=FULL: a commit is on disk before we acknowledge anything.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None); take the
    # write lock up front so that concurrent writers wait instead of failing.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


def insert_ignore(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING, on SQLite and PostgreSQL."""
    if not rows:
        return
    connection = session.connection()
    columns = tuple(rows[0])
    statement = _insert_ignore(
        connection.dialect.name, connection.dialect, table, tuple(conflict), columns
    )
    if statement.binds <= set(columns):
        statement.execute_many(connection, rows)
    else:  # a column left to its default: SQLAlchemy fills it in
        connection.execute(cast(Executable, statement.statement), list(rows))


@functools.cache
def _insert_ignore(
    name: str, dialect: Dialect, table: Table, conflict: tuple[str, ...], columns: tuple[str, ...]
) -> Prepared:
    """Compiled once per table and columns, run on the DB-API cursor: for the thousands
    of rows of a header index, SQLAlchemy's executemany machinery costs more than the
    inserts."""
    return Prepared(_insert_ignore_statement(name, table, conflict), dialect, columns)


def _insert_ignore_statement(dialect: str, table: Table, conflict: tuple[str, ...]) -> Any:
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return insert(table)  # pragma: no cover
