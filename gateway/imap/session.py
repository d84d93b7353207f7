"""A connected mailbox's signed-in IMAP session: its settings and secret read from
the database, an OAuth2 access token refreshed (and the rotated one kept) when it
has expired or the server refuses it."""

from __future__ import annotations

from collections.abc import Callable

from gateway import oauth2
from gateway.config import Config
from gateway.db import Database
from gateway.imap.client import ImapClient
from gateway.imap.connection import ImapSettings, MailboxError, connect
from gateway.models import Mailbox
from gateway.oauth2 import Tokens
from gateway.vault import Vault

Connector = Callable[[ImapSettings, str, Config], ImapClient]


def settings_of(mailbox: Mailbox) -> ImapSettings:
    return ImapSettings(
        host=mailbox.imap_host,
        port=mailbox.imap_port,
        security=mailbox.imap_security,
        username=mailbox.username,
        provider=mailbox.provider,
        tls_verify=mailbox.tls_verify,
        auth=mailbox.auth,
    )


def secret_of(vault: Vault, mailbox: Mailbox) -> str:
    """The password, or the OAuth2 access token (as stored: maybe expired)."""
    if mailbox.credentials is None:
        raise MailboxError("auth", f"mailbox {mailbox.email} has no credentials")
    plain = vault.decrypt(mailbox.credentials)
    if mailbox.auth == "oauth2":
        return Tokens.from_json(plain).access_token
    return plain


def open_session(
    db: Database, config: Config, vault: Vault, mailbox_id: int, *, connector: Connector = connect
) -> ImapClient:
    """A signed-in IMAP session of the mailbox. An OAuth2 access token is refreshed
    when it has expired, and once more when the server refuses it."""
    with db.read() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        settings = settings_of(mailbox)
        if mailbox.credentials is None:
            raise MailboxError("auth", f"mailbox {mailbox.email} has no credentials")
        plain = vault.decrypt(mailbox.credentials)
    if settings.auth != "oauth2":
        return connector(settings, plain, config)
    tokens = Tokens.from_json(plain)
    if tokens.expired():
        tokens = refreshed(db, config, vault, mailbox_id, settings.provider, tokens)
    try:
        return connector(settings, tokens.access_token, config)
    except MailboxError as exc:
        if exc.kind != "auth" or not tokens.refresh_token:
            raise
    tokens = refreshed(db, config, vault, mailbox_id, settings.provider, tokens)
    return connector(settings, tokens.access_token, config)


def refreshed(
    db: Database,
    config: Config,
    vault: Vault,
    mailbox_id: int,
    provider: str,
    tokens: Tokens,
    scope: str | None = None,
) -> Tokens:
    """A fresh access token, kept (with the refresh token the provider rotated). For
    another `scope` (Graph) only the rotated refresh token is kept: the stored access
    token stays the one IMAP and SMTP use."""
    try:
        fresh = oauth2.refresh(config, provider, tokens, scope)
    except oauth2.TokenError as exc:
        raise MailboxError("auth" if exc.kind == "person" else exc.kind, str(exc)) from exc
    with db.session() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        kept = fresh
        if scope is not None and mailbox.credentials is not None:
            stored = Tokens.from_json(vault.decrypt(mailbox.credentials))
            kept = Tokens(stored.access_token, fresh.refresh_token, stored.expires_at)
        mailbox.credentials = vault.encrypt(kept.to_json())
    return fresh
