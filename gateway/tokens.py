"""API tokens: the credentials the CRM sends mail with (SMTP AUTH, REST API bearer).

A token reads `gwt_<public id>_<secret>`: the public id finds the row, the secret
is compared with the SHA-256 kept there, in constant time. A token is shown once,
when created; `gateway user token revoke` deletes it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import PASSWORDS, get_user
from gateway.config import Config
from gateway.errors import NotFound
from gateway.models import ApiToken, User, utcnow

PREFIX = "gwt_"
_SHAPE = re.compile(r"gwt_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class CreatedToken:
    token: str  # shown once
    public_id: str


def create_token(session: Session, config: Config, email: str, label: str = "") -> CreatedToken:
    user = get_user(session, config, email)
    public_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            account_id=user.account_id,
            user_id=user.id,
            public_id=public_id,
            secret_sha256=_digest(secret),
            label=label,
        )
    )
    return CreatedToken(f"{PREFIX}{public_id}_{secret}", public_id)


def list_tokens(session: Session, config: Config, email: str) -> Sequence[ApiToken]:
    user = get_user(session, config, email)
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()


def revoke_token(session: Session, public_id: str) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.public_id == public_id))
    if token is None:
        raise NotFound(f"no token {public_id}")
    session.delete(token)


def user_for_token(session: Session, token: str) -> User | None:
    """The user a token belongs to, or None (unknown, revoked, malformed)."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.public_id == shape.group(1)))
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(shape.group(2))):
        return None
    row.last_used_at = utcnow()
    return session.get(User, row.user_id)


def user_for_password(session: Session, config: Config, email: str, password: str) -> User | None:
    """The user whose address and credential these are: an API token of theirs, or
    their own password (argon2id, the admin page's). None otherwise."""
    try:
        user = get_user(session, config, email)
    except NotFound:
        PASSWORDS.hash(password)  # as long as a wrong password: no user enumeration by timing
        return None
    if password.startswith(PREFIX):
        owner = user_for_token(session, password)
        return user if owner is not None and owner.id == user.id else None
    if user.password_hash is None:
        return None
    try:
        PASSWORDS.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()
