"""Meetings over HTTP (scope read).

    GET /meetings          list: contact_id or contact (an address), since and until
                           (when they start), status; in the order they were learnt
                           (by id), cursor pages
    GET /meetings/{id}     one, with its attendees and its contacts

A member sees the meetings from their own mail and calendars and those they are
invited to; another account's are never found.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from admin.auth import Principal, scoped
from admin.contact_filter import NO_ONE, wanted_contact
from admin.pagination import check_limit, page
from admin.params import ItemId, OptionalId
from admin.sessions import in_session
from gateway.config import Config
from gateway.errors import NotFound
from gateway.meeting_queries import (
    MeetingContact,
    MeetingFilter,
    contacts_of,
    meeting_page,
    visible_meeting,
)
from gateway.meetings import describe
from gateway.message_queries import Reader
from gateway.models import Meeting

router = APIRouter(prefix="/api/v1")
READ = Depends(scoped("read"))


class Status(StrEnum):
    confirmed = "confirmed"
    cancelled = "cancelled"


class AttendeeOut(BaseModel):
    email: str
    name: str
    status: str = Field(description="ACCEPTED, DECLINED, TENTATIVE, NEEDS-ACTION, ...")
    role: str = Field(description="REQ-PARTICIPANT, OPT-PARTICIPANT, CHAIR, ...")
    organizer: bool
    resource: bool = Field(description="a room or equipment, never a contact")


class ContactOut(BaseModel):
    id: int
    email: str


class MeetingOut(BaseModel):
    id: int
    uid: str = Field(description="the iCalendar UID")
    recurrence_id: str | None = Field(description="which occurrence of a series, if one")
    summary: str
    start: str | None
    end: str | None
    all_day: bool
    timezone: str | None = Field(description="IANA name of the zone it was set in")
    rrule: str | None = Field(description="the recurrence rule of a series")
    location: str
    conference_url: str | None
    organizer: str | None
    status: str = Field(description="confirmed or cancelled")
    sequence: int
    source: str = Field(description="where it was learnt first: mail, caldav or graph")
    message_id: int | None = Field(description="the last invitation mail that changed it")
    attendees: list[AttendeeOut]
    contacts: list[ContactOut]
    created_at: str
    updated_at: str


class MeetingPage(BaseModel):
    data: list[MeetingOut]
    next_cursor: str | None


@router.get("/meetings", response_model=MeetingPage, summary="List meetings")
async def list_meetings(
    request: Request,
    contact_id: OptionalId = None,
    contact: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: Status | None = None,
    limit: int = 50,
    cursor: str | None = None,
    who: Principal = READ,
) -> dict[str, Any]:
    check_limit(limit)
    config: Config = request.app.state.config
    query = {
        "account": who.account_id,
        "member": who.user_id,
        "list": "meetings",
        "contact_id": contact_id,
        "contact": contact,
        "since": since,
        "until": until,
        "status": status,
    }
    after = request.app.state.cursors().after(cursor, query)
    reader = Reader(who.account_id, who.user_id)

    def work(session: Session) -> list[dict[str, Any]]:
        wanted = wanted_contact(session, config, who.account_id, contact_id, contact)
        if wanted == NO_ONE:
            return []
        given = MeetingFilter(wanted, since, until, status.value if status else None)
        return _out(session, who.account_id, meeting_page(session, reader, given, after, limit + 1))

    return page(await in_session(request, work), limit, request.app.state.cursors(), query)


@router.get("/meetings/{meeting_id}", response_model=MeetingOut, summary="One meeting")
async def one_meeting(
    meeting_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    reader = Reader(who.account_id, who.user_id)

    def work(session: Session) -> dict[str, Any]:
        found = visible_meeting(session, reader, meeting_id)
        if found is None:
            raise NotFound(f"no meeting {meeting_id}")
        return _out(session, who.account_id, [found])[0]

    return await in_session(request, work)


def _out(session: Session, account_id: int, meetings: Any) -> list[dict[str, Any]]:
    meetings = list(meetings)
    contacts = contacts_of(session, account_id, meetings)
    return [_one(m, contacts.get(m.id, [])) for m in meetings]


def _one(meeting: Meeting, contacts: list[MeetingContact]) -> dict[str, Any]:
    body = describe(meeting)
    body["id"] = body.pop("meeting_id")
    body.update(
        source=meeting.source,
        message_id=meeting.message_id,
        contacts=[{"id": c.id, "email": c.email} for c in contacts],
        created_at=meeting.created_at.isoformat(),
        updated_at=meeting.updated_at.isoformat(),
    )
    return body
