"""Rows of a batch written together, just before it commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from gateway.db import insert_ignore
from gateway.models import MessageContact, table_of, utcnow
from gateway.pipeline.statements import DONE, INSERT_ADDRESSES, INSERT_EVENT


@dataclass
class Writes:
    """Rows of a batch written together (executemany) just before it commits.

    Flushed early whenever a step reads them back: the subject fallback of
    threading (message_addresses) and auto-create (events stay in order).
    """

    addresses: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    done: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, session: Session) -> None:
        connection = session.connection()
        if self.addresses:
            connection.execute(INSERT_ADDRESSES, self.addresses)
        insert_ignore(
            session, table_of(MessageContact), self.links, ["message_id", "contact_id", "role"]
        )
        if self.events:
            connection.execute(INSERT_EVENT, self.events)
        if self.done:
            connection.execute(DONE, self.done)
        self.clear()

    def clear(self) -> None:
        self.addresses, self.links, self.events, self.done = [], [], [], []

    def done_with(self, sighting_id: int, message_id: int) -> None:
        """The sighting is done: it is this message."""
        self.done.append({"b_id": sighting_id, "b_message_id": message_id, "b_now": utcnow()})

    def event(self, account_id: int, kind: str, **payload: Any) -> None:
        self.events.append(
            {"account_id": account_id, "kind": kind, "payload": payload, "created_at": utcnow()}
        )
