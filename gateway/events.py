"""emit(): add an Event to the outbox in the caller's transaction.

Written with one prepared Core INSERT on the transaction's connection, so events
keep the order in which the changes they report were made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from gateway.models import Event, table_of, utcnow
from gateway.prepared import prepared

MESSAGE_CREATED = "message.created"
MESSAGE_SIGHTED = "message.sighted"
MESSAGE_ATTACHED = "message.attached"
CONTACT_CREATED = "contact.created"
CONTACT_UPDATED = "contact.updated"
CONTACT_REMOVED = "contact.removed"
CONVERSATION_CREATED = "conversation.created"
MESSAGE_QUEUED = "message.queued"  # accepted from the CRM for delivery
MEETING_CREATED = "meeting.created"
MEETING_UPDATED = "meeting.updated"
MEETING_CANCELLED = "meeting.cancelled"

_INSERT = prepared(
    "insert_event",
    lambda: insert(table_of(Event)),
    ("account_id", "kind", "payload", "created_at"),
)


def emit(transaction: Session | Connection, account_id: int, kind: str, **payload: Any) -> None:
    connection = transaction.connection() if isinstance(transaction, Session) else transaction
    _INSERT(connection).execute(
        connection,
        {"account_id": account_id, "kind": kind, "payload": payload, "created_at": utcnow()},
    )
