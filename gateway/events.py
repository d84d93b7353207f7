"""emit(): add an Event to the outbox in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.models import Event

MESSAGE_CREATED = "message.created"
MESSAGE_SIGHTED = "message.sighted"
MESSAGE_ATTACHED = "message.attached"
CONTACT_CREATED = "contact.created"
CONTACT_REMOVED = "contact.removed"


def emit(session: Session, account_id: int, kind: str, **payload: Any) -> None:
    session.add(Event(account_id=account_id, kind=kind, payload=payload))
