"""Quarantine: dropbox mail whose sender did not verify, held until its user decides.

Approving makes the sighting pending (the pipeline then attaches it);
rejecting discards it and drops the bytes when nothing else needs them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.models import Sighting, SightingState, User, utcnow
from gateway.store import drop_raw_if_unused


def held(session: Session, account_id: int) -> list[tuple[Sighting, str]]:
    rows = session.execute(
        select(Sighting, User.email)
        .join(User, User.id == Sighting.user_id)
        .where(
            Sighting.account_id == account_id,
            Sighting.state == SightingState.QUARANTINED.value,
        )
        .order_by(Sighting.id)
    )
    return [(sighting, email) for sighting, email in rows]


def _get(session: Session, account_id: int, sighting_id: int) -> Sighting:
    sighting = session.get(Sighting, sighting_id)
    if (
        sighting is None
        or sighting.account_id != account_id
        or sighting.state != SightingState.QUARANTINED.value
    ):
        raise NotFound(f"no quarantined message {sighting_id}")
    return sighting


def approve(session: Session, account_id: int, sighting_id: int) -> None:
    _get(session, account_id, sighting_id).state = SightingState.PENDING.value


def reject(session: Session, account_id: int, sighting_id: int) -> None:
    sighting = _get(session, account_id, sighting_id)
    raw_id = sighting.raw_message_id
    sighting.state = SightingState.DISCARDED.value
    sighting.raw_message_id = None
    sighting.processed_at = utcnow()
    session.flush()
    drop_raw_if_unused(session, raw_id)
