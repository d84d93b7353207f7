"""Stored mail: raw bytes, parsed messages, where they were seen, and threads.

RawMessage  byte-exact bytes, content-addressed by SHA-256 (stored once)
Sighting    one arrival of raw bytes from a source (dropbox, imap, outbound,
            import) for a user; `state` drives the resumable pipeline
Message     one per account per message identity, however often it is seen
MessageAddress / MessageContact / MessageReference   indexed link rows
Conversation  a thread of messages
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.models.base import Base, IdType, UtcDateTime, utcnow


class Source(enum.StrEnum):
    DROPBOX = "dropbox"
    IMAP = "imap"
    OUTBOUND = "outbound"
    IMPORT = "import"


class Keep(enum.StrEnum):
    ALWAYS = "always"  # pushed on purpose (dropbox, ingest): kept, attached later if need be
    IF_MATCHED = "if_matched"  # scanned from a mailbox: kept only when a contact is involved


class SightingState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    DISCARDED = "discarded"
    FAILED = "failed"
    QUARANTINED = "quarantined"  # sender not verified: waits for its user's approval


class Direction(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class Role(enum.StrEnum):
    FROM = "from"
    # A message with several From headers: each is only a claimed author.
    DISPUTED_FROM = "disputed_from"
    SENDER = "sender"
    REPLY_TO = "reply_to"
    TO = "to"
    CC = "cc"
    BCC = "bcc"


class RawMessage(Base):
    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_account_subject", "account_id", "subject_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_key: Mapped[str] = mapped_column(String(200), default="")
    last_message_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account_id", "identity"),
        Index("ix_messages_account_message_id", "account_id", "message_id_header"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    raw_message_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    identity: Mapped[str] = mapped_column(String(64))
    message_id_header: Mapped[str | None] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    direction: Mapped[str] = mapped_column(String(8))
    # Lists of {"name": ..., "email": ...} as written in the headers.
    from_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    to_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    bcc_addresses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # e.g. ["multiple_from", "message_id_reused"]: shown, never silently dropped.
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MessageAddress(Base):
    """Every normalized address of a message: later contacts attach through it."""

    __tablename__ = "message_addresses"
    __table_args__ = (
        UniqueConstraint("message_id", "address", "role"),
        Index("ix_message_addresses_account_address", "account_id", "address"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))


class MessageContact(Base):
    __tablename__ = "message_contacts"
    __table_args__ = (
        UniqueConstraint("message_id", "contact_id", "role"),
        # A contact's mail, newest first, a page at a time (gateway.message_queries).
        Index("ix_message_contacts_contact_message", "contact_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MessageReference(Base):
    """Message-IDs a message names in In-Reply-To/References (for out-of-order threads)."""

    __tablename__ = "message_references"
    __table_args__ = (Index("ix_message_references_account_ref", "account_id", "ref"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    ref: Mapped[str] = mapped_column(String(998), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))


class Sighting(Base):
    """One arrival of a message. Created with the raw bytes in one transaction."""

    __tablename__ = "sightings"
    __table_args__ = (
        UniqueConstraint("user_id", "source", "source_key"),
        Index("ix_sightings_state", "state", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    raw_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("raw_messages.id", ondelete="SET NULL"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))
    # What makes this arrival unique for the user: the import file's hash, the
    # SMTP transaction id, or "<folder>/<uidvalidity>/<uid>" for IMAP.
    source_key: Mapped[str] = mapped_column(String(512))
    folder: Mapped[str | None] = mapped_column(String(512), default=None)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, default=None)
    uid: Mapped[int | None] = mapped_column(BigInteger, default=None)
    keep: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(12), default=SightingState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Verdict of sender verification (Authentication-Results), kept beside the raw bytes.
    auth_results: Mapped[str | None] = mapped_column(Text, default=None)
    # A forward to the user's own dropbox: the original's headers, matched instead.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
