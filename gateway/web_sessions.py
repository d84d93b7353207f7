"""Signed-in sessions of the web pages, kept on the server so that they can end.

A session's id is 256 random bits that only the person's cookie holds; the
database keeps its SHA-256. A session ends at sign-out, when its user's password
changes, after `[web] session_idle_timeout` without a request, or
`[web] session_max_age` after sign-in, whichever comes first. An ended session is
refused even if its cookie is replayed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.config import WebConfig
from gateway.models import User, WebSession, utcnow

# A request within this long of the last one does not write last_seen_at again.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SignedIn:
    """The person behind a live session."""

    session_id: int
    account_id: int
    user_id: int
    email: str
    name: str
    is_admin: bool
    must_change_password: bool
    seen_due: bool = False  # last_seen_at is due to be written (touch_session)


def open_session(session: Session, user: User, ip: str = "", user_agent: str = "") -> str:
    """A new session for `user`; returns its id (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id_sha256=_digest(token),
            account_id=user.account_id,
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            ip=ip[:64],
            user_agent=user_agent[:200],
        )
    )
    session.flush()
    return token


def signed_in(session: Session, web: WebConfig, token: str) -> SignedIn | None:
    """The person of session `token` if it is live, else None. Reads only: when the
    session's last_seen_at is due to be written (about once a minute), the answer
    says so (`seen_due`) and touch_session() writes it."""
    row = session.scalar(select(WebSession).where(WebSession.id_sha256 == _digest(token)))
    if row is None or row.ended_at is not None:
        return None
    now = utcnow()
    if _expired(row, web, now):
        return None  # refused from now on; forget_old_sessions() deletes it
    user = session.get(User, row.user_id)
    if user is None:
        return None
    return SignedIn(
        row.id,
        user.account_id,
        user.id,
        user.email,
        user.name,
        user.is_admin,
        user.password_must_change,
        now - row.last_seen_at >= _TOUCH_EVERY,
    )


def touch_session(session: Session, session_id: int) -> None:
    """The session is seen now (its idle timeout starts again)."""
    session.execute(
        update(WebSession).where(WebSession.id == session_id).values(last_seen_at=utcnow())
    )


def end_session(session: Session, token: str) -> None:
    """Sign-out: the session is refused from now on."""
    session.execute(
        update(WebSession)
        .where(WebSession.id_sha256 == _digest(token), WebSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def end_sessions_of(session: Session, user_id: int, keep: int | None = None) -> int:
    """End every live session of a user (a password change), but `keep`; how many."""
    query = update(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(WebSession.id != keep)
    result = session.execute(query.values(ended_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def forget_old_sessions(session: Session, web: WebConfig) -> int:
    """Delete the rows of sessions that cannot be live any more (ended or too old)."""
    cutoff = utcnow() - timedelta(seconds=web.session_max_age)
    ended = utcnow() - timedelta(days=1)
    result = session.execute(
        delete(WebSession).where((WebSession.created_at < cutoff) | (WebSession.ended_at < ended))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _expired(row: WebSession, web: WebConfig, now: datetime) -> bool:
    idle = now - row.last_seen_at > timedelta(seconds=web.session_idle_timeout)
    return idle or now - row.created_at > timedelta(seconds=web.session_max_age)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
