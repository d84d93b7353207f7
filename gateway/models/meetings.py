"""Meetings (from invitations in mail and from synced calendars), their attendees,
and the calendars a mailbox syncs with what each last held.

One Meeting per (account, UID, RECURRENCE-ID): the same invitation seen through
the dropbox, IMAP, outbound and a calendar is one row; (sequence, dtstamp) says
which version it holds. Its contacts are the contacts whose addresses are among
its attendees (organizer included): a join, so a contact created later finds its
meetings with nothing to re-link.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
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


class MeetingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class Meeting(Base):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("account_id", "uid", "recurrence_id"),
        Index("ix_meetings_account_id_start_at", "account_id", "start_at", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # Whose mail or calendar it came from first (a member sees these and their own).
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    uid: Mapped[str] = mapped_column(String(500))
    recurrence_id: Mapped[str] = mapped_column(String(32), default="")  # "" = the whole event
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    dtstamp: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Known only from an attendee's answer so far: any invitation replaces its details.
    from_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(String(500), default="")
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="")
    rrule: Mapped[str] = mapped_column(String(500), default="")
    location: Mapped[str] = mapped_column(String(500), default="")
    conference_url: Mapped[str] = mapped_column(String(500), default="")
    organizer: Mapped[str] = mapped_column(String(320), default="")
    status: Mapped[str] = mapped_column(String(16), default=MeetingStatus.CONFIRMED.value)
    # mail | caldav | graph: where it was learnt first.
    source: Mapped[str] = mapped_column(String(16), default="mail")
    # The last message whose invitation changed it.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    attendees: Mapped[list[MeetingAttendee]] = relationship(
        back_populates="meeting",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="MeetingAttendee.address",
    )


class MeetingAttendee(Base):
    __tablename__ = "meeting_attendees"
    __table_args__ = (
        PrimaryKeyConstraint("meeting_id", "address"),
        Index("ix_meeting_attendees_account_id", "account_id", "address"),
    )

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # normalized
    name: Mapped[str] = mapped_column(String(200), default="")
    organizer: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="NEEDS-ACTION")  # PARTSTAT
    role: Mapped[str] = mapped_column(String(20), default="REQ-PARTICIPANT")
    resource: Mapped[bool] = mapped_column(Boolean, default=False)  # a room, never a contact
    # The DTSTAMP of the answer that set `status`: an older one does not undo it.
    status_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    meeting: Mapped[Meeting] = relationship(back_populates="attendees")


class CalendarKind(enum.StrEnum):
    CALDAV = "caldav"
    GRAPH = "graph"


class Calendar(Base):
    """One calendar of a mailbox and where its sync stands."""

    __tablename__ = "calendars"
    __table_args__ = (UniqueConstraint("mailbox_id", "url"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(1000))  # the collection; Graph: the view's path
    name: Mapped[str] = mapped_column(String(200), default="")
    # RFC 6578 sync-token, Graph's deltaLink, or "" before the first full sync.
    sync_token: Mapped[str] = mapped_column(Text, default="")
    ctag: Mapped[str] = mapped_column(String(200), default="")  # getctag, when no sync-token
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    events: Mapped[int] = mapped_column(Integer, default=0)
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class CalendarEntry(Base):
    """What one resource of a calendar (a CalDAV href, a Graph event id) last held."""

    __tablename__ = "calendar_entries"
    __table_args__ = (
        UniqueConstraint("calendar_id", "href"),
        Index("ix_calendar_entries_account_id", "account_id", "uid"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(String(1000))
    etag: Mapped[str] = mapped_column(String(200), default="")
    uid: Mapped[str] = mapped_column(String(500))
