"""Outbound mail: API tokens of the CRM's users, and the durable delivery queue.

A message sent by the CRM (SMTP submission or the REST API) is one OutboundMessage
with its bytes in raw_messages (content-addressed, as inbound mail) and one
OutboundRecipient per envelope recipient, each with its own delivery state.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.models.base import Base, IdType, UtcDateTime, utcnow


class ApiToken(Base):
    """A credential for SMTP AUTH and the REST API: `gwt_<public_id>_<secret>`, a
    user's (sending as them) or the account's (scoped: read, write, send, admin).

    Only the SHA-256 of the secret is kept: the secret is 256 random bits, so a
    slow password hash would add nothing but CPU per request."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # None: the account's token (made by an admin for a program), else a user's.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    # Comma-separated: read, write, send, admin (a user's token: send).
    scopes: Mapped[str] = mapped_column(String(64), default="send", server_default="send")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DEFERRED = "deferred"  # a temporary failure: tried again later
    SENT = "sent"
    BOUNCED = "bounced"  # refused for good (5xx, or deferred past the maximum age)
    FAILED = "failed"  # could not be attempted (no route, no DKIM key, ...)
    CANCELLED = "cancelled"


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_messages_state", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # "smtp" | "api"
    mail_from: Mapped[str] = mapped_column(String(320))
    message_id_header: Mapped[str] = mapped_column(String(998))
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.QUEUED.value)
    route: Mapped[str | None] = mapped_column(String(16), default=None)  # of the last try
    # The copy in the user's Sent folder: None (not yet), "appended", "present" (the
    # server saved its own), "no mailbox", or "error: ..." (not retried).
    sent_copy: Mapped[str | None] = mapped_column(String(200), default=None)
    # Who is sending it ("host/worker"): after a crash, the process that starts in its
    # place takes back only its own messages, never those another is sending.
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    recipients: Mapped[list[OutboundRecipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="OutboundRecipient.id"
    )


class OutboundRecipient(Base):
    __tablename__ = "outbound_recipients"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_reply: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    message: Mapped[OutboundMessage] = relationship(back_populates="recipients")


class DkimKey(Base):
    """A DKIM key of a sending domain: the private half encrypted with the vault.

    One active key per (account, domain, algorithm) signs; a rotated-out key stays
    `retired` (its DNS record still verifies mail in flight) until removed."""

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain", "selector"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253))
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(16))  # rsa | ed25519
    private_key: Mapped[str] = mapped_column(Text)  # vault-encrypted PEM
    public_key: Mapped[str] = mapped_column(Text)  # the p= value
    state: Mapped[str] = mapped_column(String(12), default="active")  # active | retired
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SendingDomain(Base):
    """A domain the account sends from: the records it should publish are derived from
    config and its DKIM keys; the last live check of them is kept here."""

    __tablename__ = "sending_domains"
    __table_args__ = (UniqueConstraint("domain"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The last check: pass | warn | fail | unknown (DNS did not answer), with each
    # record's findings (outbound.dns_checks), and how many checks in a row failed.
    status: Mapped[str | None] = mapped_column(String(8), default=None)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    alerted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class DmarcReport(Base):
    """A DMARC aggregate report (RFC 7489 appendix C) a receiver sent about one of the
    account's sending domains; its rows are in dmarc_report_rows."""

    __tablename__ = "dmarc_reports"
    __table_args__ = (UniqueConstraint("domain", "org_name", "report_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))
    org_name: Mapped[str] = mapped_column(String(200))
    report_id: Mapped[str] = mapped_column(String(200))
    begin: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    policy: Mapped[str] = mapped_column(String(16), default="")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DmarcReportRow(Base):
    """One row of a report: mail from one source IP, and how it fared."""

    __tablename__ = "dmarc_report_rows"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("dmarc_reports.id", ondelete="CASCADE"), index=True
    )
    source_ip: Mapped[str] = mapped_column(String(45))
    count: Mapped[int] = mapped_column(Integer)
    disposition: Mapped[str] = mapped_column(String(16), default="none")
    dkim: Mapped[str] = mapped_column(String(8))  # DMARC's own verdict: pass | fail
    spf: Mapped[str] = mapped_column(String(8))
    spf_result: Mapped[str] = mapped_column(String(16), default="")  # the raw SPF result
    header_from: Mapped[str] = mapped_column(String(253), default="")


class IdempotencyKey(Base):
    """The first answer to a request that named an Idempotency-Key, kept 24 hours: a
    replay gets it again; the same key with another request is a conflict."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text)  # the JSON body answered
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
