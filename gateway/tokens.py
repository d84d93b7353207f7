"""API tokens: the credentials of the CRM (SMTP AUTH, REST API bearer).

A token reads `gwt_<public id>_<secret>`: the public id finds the row, the secret
is compared with the SHA-256 kept there, in constant time. A token is shown once,
when created; revoking deletes it, so it is refused from the next request on.

Two kinds: a user's token (`gateway user token create`) sends as that user (scope
send); the account's token (`gateway token create --scope ...`) is an admin's
credential for a program, with the scopes it was given: read, write, send, admin.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.accounts import PASSWORDS, get_user
from gateway.config import Config
from gateway.errors import InputError, NotFound
from gateway.models import ApiToken, User, utcnow

PREFIX = "gwt_"
SCOPES = ("read", "write", "send", "admin")
USER_SCOPES = frozenset({"send"})
NOTE_EVERY = timedelta(seconds=60)  # a token's last use is noted at most this often
_SHAPE = re.compile(r"gwt_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class CreatedToken:
    token: str  # shown once
    public_id: str


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: its account, its user (None: the account's own
    token) and its scopes."""

    account_id: int
    user_id: int | None
    scopes: frozenset[str]
    token_id: int = 0
    noted: bool = True  # its last use is noted recently enough (see grant_for_token)


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


def create_account_token(
    session: Session, account_id: int, scopes: Sequence[str], label: str = ""
) -> CreatedToken:
    """A token of the account itself, with `scopes` (a subset of SCOPES)."""
    wanted = sorted(set(scopes), key=SCOPES.index) if set(scopes) <= set(SCOPES) else None
    if not wanted:
        raise InputError("--scope", f"give one or more of {', '.join(SCOPES)}")
    public_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            account_id=account_id,
            user_id=None,
            public_id=public_id,
            secret_sha256=_digest(secret),
            label=label,
            scopes=",".join(wanted),
        )
    )
    return CreatedToken(f"{PREFIX}{public_id}_{secret}", public_id)


def list_account_tokens(session: Session, account_id: int) -> Sequence[ApiToken]:
    return session.scalars(
        select(ApiToken)
        .where(ApiToken.account_id == account_id, ApiToken.user_id.is_(None))
        .order_by(ApiToken.id)
    ).all()


def revoke_account_token(session: Session, account_id: int, public_id: str) -> None:
    token = session.scalar(
        select(ApiToken).where(
            ApiToken.public_id == public_id,
            ApiToken.account_id == account_id,
            ApiToken.user_id.is_(None),
        )
    )
    if token is None:
        raise NotFound(f"no account token {public_id}")
    session.delete(token)


def grant_for_token(session: Session, token: str, *, note: bool = True) -> Grant | None:
    """What `token` allows, or None (unknown, revoked, malformed). Its last use is
    noted (with `note`) when the one kept is older than NOTE_EVERY: a busy token
    costs no write per request. Without `note`, the grant says whether a note is due
    (note_use() writes it)."""
    shape = _SHAPE.fullmatch(token)
    if shape is None:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.public_id == shape.group(1)))
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(shape.group(2))):
        return None
    now = utcnow()
    fresh = row.last_used_at is not None and now - row.last_used_at < NOTE_EVERY
    if note and not fresh:
        row.last_used_at = now
    scopes = USER_SCOPES if row.user_id is not None else frozenset(row.scopes.split(","))
    return Grant(row.account_id, row.user_id, scopes, row.id, fresh or note)


def note_use(session: Session, token_id: int) -> None:
    """The token was used now (for `gateway token list`)."""
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


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
    """The user a user's token belongs to, or None (unknown, revoked, malformed, or
    the account's token)."""
    grant = grant_for_token(session, token)
    if grant is None or grant.user_id is None:
        return None
    return session.get(User, grant.user_id)


def user_for_password(session: Session, config: Config, email: str, password: str) -> User | None:
    """The user whose address and credential these are: an API token of theirs, or
    their own password (argon2id, the admin page's). None otherwise."""
    try:
        user = get_user(session, config, email)
    except NotFound:
        PASSWORDS.hash(password)  # as long as a wrong password: no user enumeration by timing
        return None
    if password.startswith(PREFIX):
        # A user's token signs in that user; the account's token with scope send,
        # any user of the account.
        grant = grant_for_token(session, password)
        if grant is None or "send" not in grant.scopes or grant.account_id != user.account_id:
            return None
        return user if grant.user_id in (None, user.id) else None
    if user.password_hash is None:
        return None
    try:
        PASSWORDS.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()
