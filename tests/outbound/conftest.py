"""The submission role on loopback ports, with a certificate from a test CA (trustme)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from gateway.config import Config, TlsConfig
from gateway.db import Database
from gateway.tokens import create_token
from outbound.delivery import Delivery
from outbound.submission import SubmissionServer
from tests.helpers.outbound import Submission
from tests.helpers.roles import running


@pytest.fixture
def submission_options() -> dict[str, object]:
    """Override in a test module to change [submission] settings."""
    return {}


@pytest.fixture
def submission(
    db: Database,
    config: Config,
    account_id: int,
    tmp_path: Path,
    authority: trustme.CA,
    submission_options: dict[str, object],
) -> Iterator[Submission]:
    leaf = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    options: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "tls_listen": "127.0.0.1:0",
        "auth_failure_delay": 0.0,
        "max_message_size": 200_000,
    }
    options.update(submission_options)
    cfg = replace(
        config,
        tls=TlsConfig(cert_file=str(cert), key_file=str(key)),
        submission=replace(config.submission, **options),  # type: ignore[arg-type]
    )
    with db.session() as session:
        token = create_token(session, cfg, "bob@acme.com", "test CRM").token
    client_tls = ssl.create_default_context()
    authority.configure_trust(client_tls)
    server = SubmissionServer(db, cfg)
    with running({"submission": server}):
        yield Submission(
            server.port("listen"), server.port("tls_listen"), cfg, db, client_tls, token
        )


@pytest.fixture(autouse=True)
def close_sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Delivery of a test closes the SMTP sessions it kept open, at the end."""
    made: list[Delivery] = []
    real = Delivery.__init__

    def init(self: Delivery, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(Delivery, "__init__", init)
    yield
    for delivery in made:
        delivery.close()
