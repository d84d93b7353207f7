"""The dropbox role running in-process on loopback, with its own DNS zone server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.accounts import add_user
from gateway.config import Config, DnsConfig, TlsConfig
from gateway.db import Database
from gateway.models import Account
from gateway.tls import ensure_self_signed
from inbound.dropbox import DropboxServer
from tests.helpers.dropbox import Dropbox
from tests.helpers.roles import running
from tests.peers.dkim import DkimKey, make_dkim_key
from tests.peers.dns import ZoneServer


@pytest.fixture(scope="session")
def dkim_key() -> DkimKey:
    return make_dkim_key()


@pytest.fixture
def zone(zone_server: ZoneServer, dkim_key: DkimKey) -> ZoneServer:
    """SPF/DKIM/DMARC records of the test domains (127.0.0.1 is the client)."""
    zone_server.clear()
    zone_server.set("acme.com", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone_server.set("_dmarc.acme.com", "TXT", "v=DMARC1; p=reject")
    zone_server.set("dkim.test", "TXT", "v=spf1 -all")
    zone_server.set("s1._domainkey.dkim.test", "TXT", dkim_key.record)
    zone_server.set("_dmarc.dkim.test", "TXT", "v=DMARC1; p=quarantine")
    zone_server.set("s1._domainkey.other.test", "TXT", dkim_key.record)
    zone_server.set("other.test", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    zone_server.set("soft.test", "TXT", "v=spf1 ~all")
    zone_server.set("none.test", "A", "192.0.2.1")
    zone_server.set("broken.test", "SERVFAIL")
    return zone_server


def dropbox_config(config: Config, zone: ZoneServer, tmp_path: Path, **dropbox: object) -> Config:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    values: dict[str, object] = {"listen": "127.0.0.1:0", "max_message_size": 200_000}
    values.update(dropbox)
    return replace(
        config,
        dns=DnsConfig(nameservers=(zone.address,), timeout=2.0),
        tls=TlsConfig(cert_file=str(cert), key_file=str(key)),
        dropbox=replace(config.dropbox, **values),  # type: ignore[arg-type]
    )


@pytest.fixture
def dropbox_options() -> dict[str, object]:
    """Override in a test module (or parametrize) to change [dropbox] settings."""
    return {}


@pytest.fixture
def dropbox(
    db: Database,
    config: Config,
    account_id: int,
    zone: ZoneServer,
    tmp_path: Path,
    dropbox_options: dict[str, object],
) -> Iterator[Dropbox]:
    cfg = dropbox_config(config, zone, tmp_path, **dropbox_options)
    with db.session() as session:
        account = session.get_one(Account, account_id)
        add_user(session, cfg, account, "dave@dkim.test", "Dave")
    server = DropboxServer(db, cfg, wake=lambda: None)
    with running({"dropbox": server}):
        yield Dropbox(server.port, cfg, db)
