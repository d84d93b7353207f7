"""The pipeline's unit of work: a pending sighting with its bytes, claimed oldest
first (FOR UPDATE SKIP LOCKED on PostgreSQL), and what became of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from gateway.mail_invites import Found
from gateway.models import RawMessage, Sighting, SightingState, table_of, utcnow
from gateway.parsing import ParsedMessage
from gateway.store import drop_raw_if_unused


@dataclass(frozen=True)
class Work:
    """A pending sighting with its raw bytes."""

    sighting_id: int
    account_id: int
    user_id: int
    source: str
    keep: str
    raw_message_id: int | None
    data: bytes | None
    origin: dict[str, Any] | None = None
    parsed: ParsedMessage | None = None  # parsed ahead, outside the write transaction
    invites: Found | None = None  # its invitations, read ahead too


@dataclass
class Outcome:
    sighting_id: int
    state: str
    message_id: int | None = None
    created: bool = False
    contact_ids: list[int] = field(default_factory=list)
    auto_created: list[int] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    error: str | None = None
    meeting_ids: list[int] = field(default_factory=list)


_s = table_of(Sighting).c
# Pending sightings with their bytes, oldest first, locked on PostgreSQL.
_PENDING_WORK = (
    select(
        _s.id,
        _s.account_id,
        _s.user_id,
        _s.source,
        _s.keep,
        _s.raw_message_id,
        table_of(RawMessage).c.data,
        _s.origin,
    )
    .select_from(
        table_of(Sighting).outerjoin(
            table_of(RawMessage), table_of(RawMessage).c.id == _s.raw_message_id
        )
    )
    .where(_s.state == SightingState.PENDING.value)
    .order_by(_s.id)
    .with_for_update(of=table_of(Sighting), skip_locked=True)
)
_CLAIM_AFTER = _PENDING_WORK.where(_s.id > bindparam("b_after")).limit(bindparam("b_limit"))


def claim_after(session: Session, after: int, limit: int) -> list[Work]:
    """Up to `limit` pending sightings after id `after` (prebuilt: runs per batch)."""
    rows = session.connection().execute(_CLAIM_AFTER, {"b_after": after, "b_limit": limit})
    return [Work(*row) for row in rows]


_STILL_PENDING = (
    select(_s.id)
    .where(_s.id.in_(bindparam("b_ids", expanding=True)), _s.state == SightingState.PENDING.value)
    .with_for_update(skip_locked=True)
)


def still_pending(session: Session, works: Sequence[Work]) -> list[Work]:
    """Those of `works` still pending, now in the write transaction (another worker
    may have finished some since they were read); locked on PostgreSQL."""
    ids = set(
        session.connection()
        .execute(_STILL_PENDING, {"b_ids": [w.sighting_id for w in works]})
        .scalars()
    )
    return [w for w in works if w.sighting_id in ids]


def claim(session: Session, sighting_ids: Sequence[int]) -> list[Work]:
    statement = _PENDING_WORK.where(_s.id.in_(list(sighting_ids)))
    return [Work(*row) for row in session.connection().execute(statement)]


def discard(session: Session, work: Work) -> None:
    """Scanned mail that involves no contact is not kept: drop the bytes."""
    session.execute(
        update(Sighting)
        .where(Sighting.id == work.sighting_id)
        .values(state=SightingState.DISCARDED.value, raw_message_id=None, processed_at=utcnow())
    )
    drop_raw_if_unused(session, work.raw_message_id)
