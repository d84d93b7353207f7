"""Leases: work that one node at a time may do (a mailbox's calendar sync, a periodic
job), held by a holder until `expires_at` and renewed by its heartbeat; `due_at` is
when it should next be done; `generation` grows at every claim, so that a holder
whose lease ran out can tell, in the transaction of each write, that it lost it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, UtcDateTime, utcnow


class Lease(Base):
    __tablename__ = "leases"
    __table_args__ = (
        PrimaryKeyConstraint("kind", "key"),
        Index("ix_leases_kind_due_at", "kind", "due_at"),
    )

    kind: Mapped[str] = mapped_column(String(32))  # calendar | job
    key: Mapped[str] = mapped_column(String(200))  # a mailbox id, a job's name
    holder: Mapped[str | None] = mapped_column(String(200), default=None)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
