"""Schemathesis against the OpenAPI document: generated requests to every operation,
sent over real HTTP with a token that has every scope, never get a 5xx, and every
answer matches the document (its status, content type and body's schema)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from admin.app import create_app
from gateway.config import Config, SecurityConfig
from gateway.db import Database
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from tests.helpers.web import running_web
from tests.peers.dns import ZoneServer


@schemathesis.serializer("message/rfc822")
def _rfc822(ctx: object, value: object) -> bytes:
    """A whole message is bytes: what was generated, as bytes."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


# What the issue asks: no 5xx, and answers as documented. (Schemathesis would also
# hold that every schema-valid body is accepted, but a body can be valid JSON for
# the schema and still not be a message that may be sent: a 422 then is right.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

# The document does not depend on the database: read it from an app never served.
# Connecting a mailbox (and reconnecting one) signs in to the IMAP server the body
# names: generated bodies would send traffic to whatever public address they hold,
# and this suite talks to loopback only. tests/admin/test_mailboxes_api.py covers
# those two against a real Dovecot, their refusals included.
schema = schemathesis.openapi.from_dict(
    create_app(Database("sqlite://"), Config()).openapi()
).exclude(method="POST", path_regex=r"^/api/v1/mailboxes(/\{mailbox_id\}/reconnect)?$")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str, zone_server: ZoneServer
) -> Iterator[tuple[str, str]]:
    """One gateway for the module: its URL and a token with every scope."""
    import shutil

    from gateway.accounts import add_user, create_account
    from gateway.config import PathsConfig
    from tests.helpers.database import PG_URL

    base = tmp_path_factory.mktemp("schema")
    if PG_URL:
        url = PG_URL
    else:
        (base / "var").mkdir()
        shutil.copyfile(migrated_template, base / "var" / "gateway.db")
        url = f"sqlite:///{base / 'var' / 'gateway.db'}"
    config = replace(
        Config(base_dir=base, paths=PathsConfig(var_dir="var")),
        database=replace(Config().database, url=url),
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        # Names in generated webhook URLs are looked up on the tests' own DNS server.
        dns=replace(Config().dns, nameservers=(zone_server.address,), timeout=2.0),
    )
    ensure_key_file(config.secret_key_file)
    db = Database(config.database_url)
    with db.session() as session:
        account = create_account(session, f"schema-{base.name}")
        add_user(session, config, account, f"bob@{base.name}.test", "Bob")
        token = create_account_token(session, account.id, ["read", "write", "send", "admin"])
    with running_web(db, config) as address:
        yield address, token.token
    db.dispose()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_5xx_and_every_answer_matches_the_document(
    case: schemathesis.Case[Any], served: tuple[str, str]
) -> None:
    url, token = served
    case.call_and_validate(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
