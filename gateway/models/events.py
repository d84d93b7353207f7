"""The Event outbox: written in the same transaction as the change it reports.

The webhooks role fans each event out to the account's endpoints and notes when
(dispatched_at), in one transaction; nothing else here is ever updated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, IdType, UtcDateTime, utcnow


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_account_id", "account_id", "id"),
        Index("ix_events_dispatched_at", "dispatched_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the webhooks role fanned it out (None: not yet).
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
