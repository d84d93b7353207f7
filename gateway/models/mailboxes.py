"""Connected mailboxes (IMAP/SMTP accounts of users) and their per-folder sync state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.models.base import Base, IdType, UtcDateTime, utcnow

if TYPE_CHECKING:
    from gateway.models.meetings import Calendar


class SyncMode(enum.StrEnum):
    TWO_WAY = "two_way"  # INBOX and Sent are pulled; CRM mail is appended to Sent
    ONE_WAY = "one_way"  # nothing is pulled; CRM mail is appended to Sent


class MailboxState(enum.StrEnum):
    ACTIVE = "active"
    RECONNECT_REQUIRED = "reconnect_required"  # credentials refused: a person must act


class Security(enum.StrEnum):
    TLS = "tls"  # implicit TLS (993, 465)
    STARTTLS = "starttls"
    NONE = "none"  # only to networks in [security] allowed_private_networks


class FolderRole(enum.StrEnum):
    INBOX = "inbox"
    SENT = "sent"


class Mailbox(Base):
    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("account_id", "email"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(32))
    sync_mode: Mapped[str] = mapped_column(String(16), default=SyncMode.TWO_WAY.value)
    imap_host: Mapped[str] = mapped_column(String(255))
    imap_port: Mapped[int] = mapped_column(Integer)
    imap_security: Mapped[str] = mapped_column(String(16))
    smtp_host: Mapped[str] = mapped_column(String(255), default="")
    smtp_port: Mapped[int] = mapped_column(Integer, default=0)
    smtp_security: Mapped[str] = mapped_column(String(16), default=Security.STARTTLS.value)
    username: Mapped[str] = mapped_column(String(320))
    auth: Mapped[str] = mapped_column(String(16), default="password")  # password | oauth2
    # Password or OAuth2 tokens (JSON), encrypted with the secret key (gateway.vault).
    credentials: Mapped[str | None] = mapped_column(Text, default=None)
    tls_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether the server saves its own copy of mail sent through it into Sent (Gmail,
    # Outlook, Zoho do): learnt from the first message the gateway sends through it.
    server_saves_sent: Mapped[bool | None] = mapped_column(Boolean, default=None)
    state: Mapped[str] = mapped_column(String(24), default=MailboxState.ACTIVE.value)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Before its folders are known: connecting | listing_folders (then they tell).
    sync_phase: Mapped[str | None] = mapped_column(String(24), default=None)
    # "Sync now" asked (API): the imap role syncs it at its next look, then clears it.
    sync_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Why it needs a person (gateway.imap.reasons), while reconnect_required.
    reconnect_reason: Mapped[str | None] = mapped_column(String(24), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    folders: Mapped[list[MailboxFolder]] = relationship(
        back_populates="mailbox", cascade="all, delete-orphan", order_by="MailboxFolder.id"
    )
    calendars: Mapped[list[Calendar]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="Calendar.id"
    )


class MailboxFolder(Base):
    """Sync checkpoint of one folder: everything up to last_uid under uidvalidity is stored."""

    __tablename__ = "mailbox_folders"
    __table_args__ = (UniqueConstraint("mailbox_id", "role"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(512))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Progress of the initial sync (newest first, within the window) and counters.
    initial_done: Mapped[bool] = mapped_column(Boolean, default=False)
    scan_low_uid: Mapped[int | None] = mapped_column(BigInteger, default=None)  # resume point
    total: Mapped[int] = mapped_column(Integer, default=0)
    scanned: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    # Completeness audit: messages on the server (within the window) that involve a
    # contact but were never stored, as found by the last audit (then repaired).
    missing: Mapped[int] = mapped_column(Integer, default=0)
    audited_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    mailbox: Mapped[Mailbox] = relationship(back_populates="folders")


class ScannedMessage(Base):
    """Header index: a message whose headers were read but which named no contact then.

    When one of its addresses becomes a contact, `wanted` is set and the sync
    fetches it without reading the folder again."""

    __tablename__ = "scanned_messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uidvalidity", "uid"),
        Index("ix_scanned_messages_wanted", "mailbox_id", "wanted"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder_id: Mapped[int] = mapped_column(ForeignKey("mailbox_folders.id", ondelete="CASCADE"))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id_header: Mapped[str | None] = mapped_column(String(998), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    wanted: Mapped[bool] = mapped_column(Boolean, default=False)


class ScannedAddress(Base):
    """The addresses (normalized) of a ScannedMessage, searchable per account."""

    __tablename__ = "scanned_addresses"
    __table_args__ = (
        PrimaryKeyConstraint("scanned_id", "address"),
        Index("ix_scanned_addresses_account_id", "account_id", "address"),
    )

    scanned_id: Mapped[int] = mapped_column(ForeignKey("scanned_messages.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
