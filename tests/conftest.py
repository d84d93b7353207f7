"""Fixtures: a migrated database per test (SQLite file, or PostgreSQL when
GATEWAY_TEST_DATABASE_URL is set), a Config pointing at it, and mail builders."""

from __future__ import annotations

import itertools
import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from hypothesis import settings
from sqlalchemy import text

from gateway.accounts import add_user, create_account
from gateway.config import Config, DatabaseConfig, PathsConfig, SecurityConfig
from gateway.db import Database
from gateway.models import Base
from gateway.vault import ensure_key_file
from tests.helpers.database import PG_URL
from tests.peers.dns import ZoneServer
from tests.peers.dovecot import Dovecot, ImapUser
from tests.peers.dovecot import available as dovecot_available
from tests.peers.smtp_sink import Sink

# CI explores a fixed set of examples (reproducible runs); elsewhere Hypothesis
# keeps looking for new counterexamples on every run.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_report_header() -> str:
    return f"database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database at the newest migration; tests get a copy (SQLite) or a truncation (PG)."""
    if PG_URL:
        db = Database(PG_URL)
        with db.engine.begin() as conn:
            # Every table there, whatever schema left it (an older or a newer checkout
            # of the gateway may have used this database): the suite starts clean.
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            for table in tables:
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
        db.migrate()
        db.dispose()
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "gateway.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name("gateway.db-wal").exists()
    return str(path)


@pytest.fixture
def database_url(migrated_template: str, tmp_path: Path) -> str:
    if PG_URL:
        db = Database(PG_URL)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with db.engine.begin() as conn:
            # A gateway process that a test killed with SIGKILL may leave a
            # session idle in a transaction for a moment: end it, don't wait.
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state LIKE 'idle in transaction%'"
                )
            )
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.dispose()
        return PG_URL
    target = tmp_path / "var" / "gateway.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    return replace(
        Config(),
        paths=PathsConfig(var_dir=str(tmp_path / "var")),
        database=DatabaseConfig(url=database_url),
        base_dir=tmp_path,
    )


@pytest.fixture
def db(config: Config) -> Iterator[Database]:
    database = Database(config.database_url)
    yield database
    database.dispose()


@pytest.fixture
def account_id(db: Database, config: Config) -> int:
    """An account "acme" with users bob@acme.com (alias bob@acme.org) and ann@acme.com."""
    with db.session() as session:
        account = create_account(session, "acme")
        add_user(session, config, account, "bob@acme.com", "Bob", ["bob@acme.org"])
        add_user(session, config, account, "ann@acme.com", "Ann")
        return account.id


# -- IMAP: a Dovecot for the session, a user of it per test ------------------------------


@pytest.fixture(scope="session")
def zone_server() -> ZoneServer:
    """The tests' authoritative DNS server (twisted.names) on loopback. The reactor
    cannot restart: one server for the session, its records set per test."""
    return ZoneServer()


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot]:
    if not dovecot_available():
        if os.environ.get("CI"):
            pytest.fail("Dovecot is missing: .ci/run installs dovecot-imapd")
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    server = Dovecot().start()
    yield server
    server.stop()


_imap_users = itertools.count(1)


@pytest.fixture
def imap_user(dovecot_server: Dovecot) -> ImapUser:
    name = f"user{next(_imap_users)}"
    dovecot_server.add_user(name, "secret-1")
    return ImapUser(dovecot_server, name, "secret-1")


@pytest.fixture
def imap_config(config: Config) -> Config:
    """Loopback allowed (the test servers), small header batches, a secret key file."""
    ensure_key_file(config.secret_key_file)
    return replace(
        config,
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        imap=replace(config.imap, batch_size=7, timeout=10.0, backoff_max=2.0),
    )


@pytest.fixture(scope="session")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def sink(authority: trustme.CA) -> Iterator[Sink]:
    """A relay with STARTTLS (a trustme certificate) and AUTH."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("relay.test", "127.0.0.1").configure_cert(context)
    made = Sink(tls=context, login=("relayuser", "relaypass"))
    yield made
    made.close()


@pytest.fixture
def mx() -> Iterator[Sink]:
    made = Sink()
    yield made
    made.close()
