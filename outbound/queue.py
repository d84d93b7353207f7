"""The durable delivery queue: a message the CRM sends is committed here before the
gateway says yes to it (SMTP 250, HTTP 202), one row per recipient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.errors import Conflict, NotFound
from gateway.events import MESSAGE_QUEUED, emit
from gateway.models import DeliveryState, OutboundMessage, OutboundRecipient, User, utcnow
from gateway.store import store_raw
from outbound.hygiene import Outgoing


@dataclass(frozen=True)
class Queued:
    id: int
    message_id: str


def enqueue(
    db: Database,
    user: User,
    mail_from: str,
    recipients: Sequence[str],
    outgoing: Outgoing,
    source: str,
) -> Queued:
    """Commit the message and its recipients (state queued); returns after the commit."""
    with db.session() as session:
        raw_id = store_raw(session, outgoing.raw)
        message = OutboundMessage(
            account_id=user.account_id,
            user_id=user.id,
            raw_message_id=raw_id,
            source=source,
            mail_from=mail_from,
            message_id_header=outgoing.message_id[:998],
            state=DeliveryState.QUEUED.value,
            recipients=[OutboundRecipient(address=r) for r in dict.fromkeys(recipients)],
        )
        session.add(message)
        session.flush()
        emit(
            session,
            user.account_id,
            MESSAGE_QUEUED,
            id=message.id,
            message_id=outgoing.message_id,
            user=user.email,
            recipients=list(dict.fromkeys(recipients)),
        )
        return Queued(message.id, outgoing.message_id)


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
    db: Database, state: str | None = None, message_id: int | None = None
) -> list[dict[str, Any]]:
    """Every message still in the queue's tables (or one), with its recipients."""
    with db.read() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if state is not None:
            query = query.where(OutboundMessage.state == state)
        if message_id is not None:
            query = query.where(OutboundMessage.id == message_id)
        return [
            {
                "id": m.id,
                "state": m.state,
                "route": m.route,
                "from": m.mail_from,
                "message_id": m.message_id_header,
                "attempts": m.attempts,
                "sent_copy": m.sent_copy,
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
