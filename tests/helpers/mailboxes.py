"""A mailbox row written straight to the database, for tests (and benches) that need
a connected mailbox without signing in to a server: its secret encrypted as the
gateway keeps it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, User
from gateway.vault import Vault, ensure_key_file


def mailbox_row(
    db: Database,
    config: Config,
    email: str,
    secret: str,
    *,
    owner: str | None = None,
    **fields: Any,
) -> int:
    """A mailbox of the user `owner` (default: `email`); `secret` is its password, or
    its OAuth2 tokens as JSON with auth="oauth2"."""
    ensure_key_file(config.secret_key_file)
    values: dict[str, Any] = {
        "email": email,
        "provider": "other",
        "imap_host": "127.0.0.1",
        "imap_port": 1,
        "imap_security": "none",
        "username": email,
        **fields,
    }
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == (owner or email))).one()
        mailbox = Mailbox(
            account_id=user.account_id,
            user_id=user.id,
            credentials=Vault.load(config.secret_key_file).encrypt(secret),
            **values,
        )
        session.add(mailbox)
        session.flush()
        return mailbox.id
