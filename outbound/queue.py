"""The durable delivery queue: a message the CRM sends is committed here before the
gateway says yes to it (SMTP 250, HTTP 202), one row per recipient."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from gateway.db import Database
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
