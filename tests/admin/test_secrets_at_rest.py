"""Secrets never rest in clear: after tokens, a mailbox password, a webhook secret, a
DKIM key, a sign-in password and a session id were made and used, neither the
database (the SQLite file and its WAL, or a pg_dump) nor the log holds any of them,
plain or base64."""

from __future__ import annotations

import base64
import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.accounts import get_user, set_password
from gateway.config import Config, SecurityConfig
from gateway.db import Database
from gateway.models import Account, Mailbox
from gateway.tokens import create_account_token, create_token
from gateway.vault import Vault, ensure_key_file
from gateway.webhooks import add_endpoint
from outbound.dkim_keys import generate
from tests.helpers.browser_session import Person
from tests.helpers.database import PG_URL
from tests.helpers.web import running_web

PASSWORD = "Mailbox-Pa55word!-7f3a"
SIGN_IN_PASSWORD = "Sign-in-Pa55word!-91c2"


def test_no_secret_is_in_the_database_or_the_log(
    db: Database, config: Config, account_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ensure_key_file(config.secret_key_file)
    config = replace(config, security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)))
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        user_token = create_token(session, config, "bob@acme.com").token
        account_token = create_account_token(session, account_id, ["read", "write"]).token
        _, webhook_secret = add_endpoint(
            session, config, vault, account_id, "http://127.0.0.1:9/hooks"
        )
        bob = get_user(session, config, "bob@acme.com")
        session.add(
            Mailbox(
                account_id=account_id,
                user_id=bob.id,
                email="bob@acme.com",
                provider="other",
                imap_host="127.0.0.1",
                imap_port=1,
                imap_security="none",
                username="bob",
                credentials=vault.encrypt(PASSWORD),
            )
        )
    with db.session() as session:
        key = generate(session, vault, session.get_one(Account, account_id), "acme.com")
        private = vault.decrypt(key.private_key)
    with db.session() as session:
        set_password(session, config, "bob@acme.com", SIGN_IN_PASSWORD)
    with running_web(db, config) as url:
        for token in (account_token, user_token, user_token[:-2] + "xx"):
            httpx.get(f"{url}/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
        person, stranger = Person(url), Person(url)
        try:
            assert stranger.sign_in("bob@acme.com", SIGN_IN_PASSWORD + "x").status_code == 401
            assert person.sign_in("bob@acme.com", SIGN_IN_PASSWORD).status_code == 303
            session_id = (person.session_cookie or "").split(".")[0]  # the signed value's id
            assert len(session_id) >= 40
        finally:
            person.close()
            stranger.close()
    db.dispose()
    pem_body = "".join(private.strip().splitlines()[1:-1])  # the key's own base64
    der = serialization.load_pem_private_key(private.encode(), None).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secrets = [
        PASSWORD,
        user_token,
        account_token,
        webhook_secret,
        pem_body[:64],
        SIGN_IN_PASSWORD,
        session_id,
    ]
    stored = _database_bytes(config)
    assert b"http://127.0.0.1:9/hooks" in stored and b"bob@acme.com" in stored  # read, really
    # The gateway's log; the test's own HTTP client (httpx, httpcore) logs at DEBUG the
    # cookies the gateway sets, as a browser would hold them.
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    log = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in ours).encode()
    assert b"web: listening on" in log  # the log was captured
    for secret in secrets:
        for form in (secret.encode(), base64.b64encode(secret.encode())):
            assert form not in stored, f"in the database: {secret[:12]}..."
            assert form not in log, f"in the log: {secret[:12]}..."
    secret_part = user_token[len("gwt_") + 13 :].encode()  # after gwt_<12 hex>_; it may hold "_"
    assert secret_part not in stored and der[-32:] not in stored


def _database_bytes(config: Config) -> bytes:
    if PG_URL:
        url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        done = subprocess.run(["pg_dump", url], capture_output=True, check=True, timeout=120)
        return done.stdout
    path = Path(config.database_url.removeprefix("sqlite:///"))
    found = path.read_bytes()
    for extra in ("-wal", "-journal"):
        side = path.with_name(path.name + extra)
        if side.exists():
            found += side.read_bytes()
    return found
