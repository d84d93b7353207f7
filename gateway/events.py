"""emit(): add an Event to the outbox in the caller's transaction.

Written with one prebuilt Core INSERT on the session's connection, so events
keep the order in which the changes they report were made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.models import Event, table_of, utcnow

MESSAGE_CREATED = "message.created"
MESSAGE_SIGHTED = "message.sighted"
MESSAGE_ATTACHED = "message.attached"
CONTACT_CREATED = "contact.created"
CONTACT_REMOVED = "contact.removed"
MESSAGE_QUEUED = "message.queued"  # accepted from the CRM for delivery

_INSERT = insert(table_of(Event))


def emit(session: Session, account_id: int, kind: str, **payload: Any) -> None:
    session.connection().execute(
        _INSERT,
        {"account_id": account_id, "kind": kind, "payload": payload, "created_at": utcnow()},
    )
