"""XOAUTH2 sign-in and token refresh, against the in-process IMAP server and a local
token endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from gateway.config import Config, OAuth2Config
from gateway.db import Database
from gateway.imap.connection import MailboxError
from gateway.models import Mailbox
from gateway.oauth2 import Tokens
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.helpers.imap import attached_subjects, contacts, sync
from tests.helpers.mail import make_message
from tests.peers.imap_faults import FaultyImap
from tests.peers.token_endpoint import TokenEndpoint


@pytest.fixture
def oauth(imap_config: Config) -> Iterator[tuple[FaultyImap, TokenEndpoint, Config]]:
    server = FaultyImap()
    server.add_user("bob@acme.com", token="access-0")
    endpoint = TokenEndpoint(server, refresh_tokens={"refresh-0": "bob@acme.com"})
    config = replace(
        imap_config,
        oauth2=OAuth2Config(
            google_client_id="test-client",
            google_client_secret="s3cret",
            google_token_url=endpoint.url,
            microsoft_client_id="test-client",
            microsoft_token_url=endpoint.url + "?tenant={tenant}",
            timeout=5.0,
        ),
    )
    yield server, endpoint, config
    endpoint.stop()
    server.stop()


def connect(db: Database, config: Config, server: FaultyImap, tokens: dict[str, object]) -> None:
    request = MailboxRequest(
        email="bob@acme.com",
        provider="gmail",
        imap_host="127.0.0.1",
        imap_port=server.port,
        imap_security="none",
        auth="oauth2",
    )
    add_mailbox(db, config, Vault.load(config.secret_key_file), request, json.dumps(tokens))


def stored_tokens(db: Database, config: Config) -> Tokens:
    with db.session() as session:
        encrypted = session.scalars(select(Mailbox.credentials)).one()
    assert encrypted is not None
    return Tokens.from_json(Vault.load(config.secret_key_file).decrypt(encrypted))


def test_xoauth2_sign_in_and_sync(db, account_id, oauth) -> None:
    server, endpoint, config = oauth
    contacts(db, config, account_id, "carol@client.com")
    server.append("bob@acme.com", "INBOX", make_message(from_="carol@client.com", subject="hi"))
    connect(db, config, server, {"access_token": "access-0", "refresh_token": "refresh-0"})
    assert sync(db, config).fetched == 1
    assert attached_subjects(db) == ["hi"]
    assert any(" AUTHENTICATE XOAUTH2" in c.upper() for c in server.commands)
    assert not any(" LOGIN " in c.upper() for c in server.commands)
    assert endpoint.requests == []  # the token was still good


def test_an_expired_token_is_refreshed_first_and_the_rotated_one_kept(
    db, account_id, oauth
) -> None:
    server, endpoint, config = oauth
    connect(
        db,
        config,
        server,
        {"access_token": "access-0", "refresh_token": "refresh-0", "expires_in": 3600},
    )
    with db.session() as session:  # an hour later
        mailbox = session.scalars(select(Mailbox)).one()
        vault = Vault.load(config.secret_key_file)
        old = Tokens.from_json(vault.decrypt(mailbox.credentials or ""))
        expired = Tokens(old.access_token, old.refresh_token, time.time() - 10)
        mailbox.credentials = vault.encrypt(expired.to_json())
    sync(db, config)
    assert [r["refresh_token"] for r in endpoint.requests] == ["refresh-0"]
    assert endpoint.requests[0]["client_secret"] == "s3cret"
    tokens = stored_tokens(db, config)
    assert (tokens.access_token, tokens.refresh_token) == ("access-1", "refresh-1")
    assert tokens.expires_at is not None and tokens.expires_at > time.time() + 3000


def test_a_refused_access_token_is_refreshed_once_and_retried(db, account_id, oauth) -> None:
    server, endpoint, config = oauth
    connect(db, config, server, {"access_token": "access-0", "refresh_token": "refresh-0"})
    server.tokens["bob@acme.com"] = "revoked-early"  # the server no longer takes access-0
    sync(db, config)
    assert len(endpoint.requests) == 1
    assert stored_tokens(db, config).access_token == "access-1"


def test_a_refused_refresh_needs_the_user_to_sign_in_again(db, account_id, oauth) -> None:
    server, endpoint, config = oauth
    connect(db, config, server, {"access_token": "access-0", "refresh_token": "refresh-0"})
    server.tokens["bob@acme.com"] = "revoked"
    endpoint.refuse = "invalid_grant"
    with pytest.raises(MailboxError) as failed:
        sync(db, config)
    assert failed.value.kind == "auth"
    with db.session() as session:
        mailbox = session.scalars(select(Mailbox)).one()
        assert mailbox.state == "reconnect_required"
        assert "invalid_grant" in (mailbox.last_error or "")
        assert "sign in again" in (mailbox.last_error or "")


def test_a_misconfigured_app_is_the_operators_to_fix(db, account_id, oauth) -> None:
    server, endpoint, config = oauth
    connect(db, config, server, {"access_token": "access-0", "refresh_token": "refresh-0"})
    server.tokens["bob@acme.com"] = "revoked"
    endpoint.refuse = "invalid_client"
    with pytest.raises(MailboxError, match=r"check \[oauth2\] client id and secret"):
        sync(db, config)
    with db.session() as session:
        assert session.scalars(select(Mailbox.state)).one() == "active"  # not the user's fault
