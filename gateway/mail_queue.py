"""The durable delivery queue: a message the CRM sends is committed here before the
gateway says yes to it (SMTP 250, HTTP 202), one row per recipient.

The queue's API for those who fill and read it (the submission role, the HTTP API,
`gateway queue`); the delivery role (outbound.delivery) empties it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.events import MESSAGE_QUEUED, emit
from gateway.models import (
    DeliveryState,
    OutboundMessage,
    OutboundRecipient,
    User,
    table_of,
    utcnow,
)
from gateway.prepared import prepared
from gateway.store import store_raw


@dataclass(frozen=True)
class Outgoing:
    """A message ready to queue (outbound.hygiene.prepare makes it)."""

    raw: bytes  # CRLF line ends, Message-ID and Date present
    message_id: str  # without <>
    senders: tuple[str, ...]  # the From header's addresses, normalized


@dataclass(frozen=True)
class Queued:
    id: int
    message_id: str


@dataclass(frozen=True)
class Sender:
    """The signed-in user a message is queued for."""

    account_id: int
    user_id: int
    email: str


def enqueue(
    db: Database,
    sender: Sender | User,
    mail_from: str,
    recipients: Sequence[str],
    outgoing: Outgoing,
    source: str,
) -> Queued:
    """Commit the message and its recipients (state queued); returns after the commit."""
    with db.connection() as connection:
        return enqueue_in(connection, sender, mail_from, recipients, outgoing, source)


def enqueue_in(
    connection: Connection,
    sender: Sender | User,
    mail_from: str,
    recipients: Sequence[str],
    outgoing: Outgoing,
    source: str,
) -> Queued:
    """enqueue() in the caller's transaction: a few prepared statements (this runs for
    every message the CRM sends; the submission port group-commits it)."""
    if isinstance(sender, User):
        sender = Sender(sender.account_id, sender.id, sender.email)
    now = utcnow()
    unique = list(dict.fromkeys(recipients))
    message_id = _one(
        _INSERT_MESSAGE(connection).execute(
            connection,
            {
                "account_id": sender.account_id,
                "user_id": sender.user_id,
                "raw_message_id": store_raw(connection, outgoing.raw),
                "source": source,
                "mail_from": mail_from,
                "message_id_header": outgoing.message_id[:998],
                "state": DeliveryState.QUEUED.value,
                "route": None,
                "sent_copy": None,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
    )
    _INSERT_RECIPIENTS(connection).execute_many(
        connection,
        [
            {
                "message_id": message_id,
                "address": address,
                "state": DeliveryState.QUEUED.value,
                "attempts": 0,
                "last_reply": None,
                "updated_at": now,
            }
            for address in unique
        ],
    )
    emit(
        connection,
        sender.account_id,
        MESSAGE_QUEUED,
        id=message_id,
        message_id=outgoing.message_id,
        user=sender.email,
        recipients=unique,
    )
    return Queued(int(message_id), outgoing.message_id)


_INSERT_MESSAGE = prepared(
    "insert_outbound_message",
    lambda: insert(table_of(OutboundMessage)).returning(table_of(OutboundMessage).c.id),
    (
        "account_id",
        "user_id",
        "raw_message_id",
        "source",
        "mail_from",
        "message_id_header",
        "state",
        "route",
        "sent_copy",
        "attempts",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ),
)
_INSERT_RECIPIENTS = prepared(
    "insert_outbound_recipients",
    lambda: insert(table_of(OutboundRecipient)),
    ("message_id", "address", "state", "attempts", "last_reply", "updated_at"),
)


def _one(cursor: Any) -> Any:
    row = cursor.fetchone()
    return None if row is None else row[0]


def sent_in_last_hour(db: Database, user_id: int) -> int:
    """Messages the user queued in the last hour (for [submission] max_messages_per_hour)."""
    since = utcnow() - timedelta(hours=1)
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboundMessage)
                .where(OutboundMessage.user_id == user_id, OutboundMessage.created_at > since)
            )
            or 0
        )


def queue_rows(
    db: Database,
    state: str | None = None,
    message_id: int | None = None,
    user_id: int | None = None,
    account_id: int | None = None,
) -> list[dict[str, Any]]:
    """Every message still in the queue's tables (or one, or one user's), with its
    recipients: each one's state and the remote's last reply (the bounce report)."""
    with db.read() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if state is not None:
            query = query.where(OutboundMessage.state == state)
        if message_id is not None:
            query = query.where(OutboundMessage.id == message_id)
        if user_id is not None:
            query = query.where(OutboundMessage.user_id == user_id)
        if account_id is not None:
            query = query.where(OutboundMessage.account_id == account_id)
        return [
            {
                "id": m.id,
                "state": m.state,
                "route": m.route,
                "from": m.mail_from,
                "message_id": m.message_id_header,
                "attempts": m.attempts,
                "sent_copy": m.sent_copy,
                "claimed_by": m.claimed_by,
                "created_at": m.created_at.isoformat(),
                "next_attempt_at": m.next_attempt_at.isoformat(),
                "recipients": [
                    {
                        "address": r.address,
                        "state": r.state,
                        "attempts": r.attempts,
                        "last_reply": r.last_reply,
                    }
                    for r in m.recipients
                ],
            }
            for m in session.scalars(query)
        ]


def retry(db: Database, message_id: int) -> int:
    """Try again now: deferred, bounced and failed recipients go back to queued.
    Returns how many."""
    again = (DeliveryState.DEFERRED.value, DeliveryState.BOUNCED.value, DeliveryState.FAILED.value)
    with db.session() as session:
        message = _message(session, message_id)
        if message.state == DeliveryState.SENDING.value:
            raise Conflict(f"message {message_id} is being sent right now")
        count = 0
        for recipient in message.recipients:
            if recipient.state in again:
                recipient.state = DeliveryState.QUEUED.value
                count += 1
        if count:
            message.state = DeliveryState.QUEUED.value
            message.next_attempt_at = utcnow()
        return count


def cancel(db: Database, message_id: int) -> int:
    """Stop trying: recipients not yet sent or bounced are cancelled. Returns how many."""
    with db.session() as session:
        message = _message(session, message_id)
        if message.state == DeliveryState.SENDING.value:
            raise Conflict(f"message {message_id} is being sent right now: try again shortly")
        count = 0
        for recipient in message.recipients:
            if recipient.state in (DeliveryState.QUEUED.value, DeliveryState.DEFERRED.value):
                recipient.state = DeliveryState.CANCELLED.value
                count += 1
        states = {r.state for r in message.recipients}
        if DeliveryState.SENT.value in states:
            message.state = DeliveryState.SENT.value
        elif DeliveryState.BOUNCED.value in states:
            message.state = DeliveryState.BOUNCED.value
        else:
            message.state = DeliveryState.CANCELLED.value
        return count


def _message(session: Session, message_id: int) -> OutboundMessage:
    message = session.get(OutboundMessage, message_id)
    if message is None:
        raise NotFound(f"no queued message {message_id}")
    return message
