"""Dropbox mail refused because its sender did not verify, kept a short while (7 days)
so that "why is this mail not here?" has an answer: when, from whom, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, IdType, UtcDateTime, utcnow


class DropboxRefusal(Base):
    __tablename__ = "dropbox_refusals"
    __table_args__ = (
        Index("ix_dropbox_refusals_message", "account_id", "message_id_header"),
        Index("ix_dropbox_refusals_refused_at", "refused_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    refused_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    mail_from: Mapped[str] = mapped_column(String(998), default="")
    message_id_header: Mapped[str | None] = mapped_column(String(998), default=None)
    subject: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    auth_results: Mapped[str | None] = mapped_column(Text, default=None)
