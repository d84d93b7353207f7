"""MessageStore.accept(): raw bytes + a pending Sighting, committed in one transaction.

This runs before any acknowledgement (SMTP 250, HTTP 202, an IMAP checkpoint
advance). The bytes are stored byte-exact and content-addressed by SHA-256, so
the same bytes arriving twice are stored once. Arrivals are idempotent per
(user, source, source_key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import Database, insert_ignore
from gateway.models import Keep, RawMessage, Sighting, SightingState, Source, User, table_of


@dataclass(frozen=True)
class Arrival:
    """Where a message came from."""

    user_id: int
    source: Source
    keep: Keep
    source_key: str | None = None  # default: the SHA-256 of the bytes
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    auth_results: str | None = None
    quarantined: bool = False  # held until its user approves it
    origin: dict[str, Any] | None = None  # a forward to the user's own dropbox


@dataclass(frozen=True)
class Accepted:
    sighting_id: int
    raw_message_id: int
    sha256: str
    new: bool  # False when this exact arrival was already stored


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def accept(self, raw: bytes, arrival: Arrival) -> Accepted:
        """Store `raw` durably; returns only after the commit."""
        return self.accept_many(raw, [arrival])[0]

    def accept_many(self, raw: bytes, arrivals: Sequence[Arrival]) -> list[Accepted]:
        """Store `raw` once with one arrival per recipient, in one committed transaction."""
        for attempt in range(3):
            try:
                with self.db.session() as session:
                    return [accept_in(session, raw, arrival) for arrival in arrivals]
            except IntegrityError:
                # A concurrent writer stored the same bytes or arrival, or a
                # discard removed the raw row we found: look again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def accept_in(session: Session, raw: bytes, arrival: Arrival) -> Accepted:
    """The body of accept(), for callers that own the transaction."""
    sha = hashlib.sha256(raw).hexdigest()
    key = arrival.source_key or sha
    existing = session.scalar(
        select(Sighting).where(
            Sighting.user_id == arrival.user_id,
            Sighting.source == arrival.source.value,
            Sighting.source_key == key,
        )
    )
    if existing is not None and existing.raw_message_id is not None:
        return Accepted(existing.id, existing.raw_message_id, sha, new=False)
    insert_ignore(
        session,
        table_of(RawMessage),
        [{"sha256": sha, "size": len(raw), "data": raw}],
        ["sha256"],
    )
    raw_id = session.scalar(select(RawMessage.id).where(RawMessage.sha256 == sha))
    assert raw_id is not None
    if existing is not None:
        # Seen before and discarded as involving no contact: look again.
        existing.raw_message_id = raw_id
        existing.state = "pending"
        existing.keep = arrival.keep.value
        return Accepted(existing.id, raw_id, sha, new=True)
    account_id = session.scalar(select(User.account_id).where(User.id == arrival.user_id))
    if account_id is None:
        raise LookupError(f"no user with id {arrival.user_id}")
    sighting = Sighting(
        account_id=account_id,
        user_id=arrival.user_id,
        raw_message_id=raw_id,
        source=arrival.source.value,
        source_key=key,
        folder=arrival.folder,
        uidvalidity=arrival.uidvalidity,
        uid=arrival.uid,
        keep=arrival.keep.value,
        auth_results=arrival.auth_results,
        origin=arrival.origin,
        state=(SightingState.QUARANTINED if arrival.quarantined else SightingState.PENDING).value,
    )
    session.add(sighting)
    session.flush()
    return Accepted(sighting.id, raw_id, sha, new=True)
