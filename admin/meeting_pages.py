"""The Meetings page: upcoming meetings soonest first and past ones latest first, for
everyone or one contact; each with when, what, who (contacts linked), where and the
link to join. A member sees the meetings of their own mail and calendars, and those
they are invited to (gateway.meeting_queries)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from admin.page_kit import Visit, db_of, minutes, page, visit
from gateway.meeting_queries import MeetingContact, MeetingFilter, contacts_of, meetings_by_time
from gateway.message_queries import Reader
from gateway.models import Contact, Meeting, utcnow

router = APIRouter(include_in_schema=False)
PAGE = 50
MAX_ID = 2**63 - 1
SOURCES = {"mail": "from an invitation", "caldav": "from a calendar", "graph": "from a calendar"}
ANSWERS = {
    "ACCEPTED": "accepted",
    "DECLINED": "declined",
    "TENTATIVE": "maybe",
    "NEEDS-ACTION": "no answer yet",
    "DELEGATED": "delegated",
}


@router.get("/meetings")
async def meetings(request: Request, contact: int = 0) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    reader = Reader(here.principal.account_id, here.principal.user_id)
    contact_id = contact if 0 < contact <= MAX_ID else None

    def work() -> dict[str, Any] | None:
        with db_of(request).read() as session:
            chosen = None
            if contact_id is not None:
                chosen = session.scalar(
                    select(Contact)
                    .where(Contact.id == contact_id, Contact.account_id == reader.account_id)
                    .options(selectinload(Contact.emails))
                )
                if chosen is None:
                    return None
            given = MeetingFilter(contact_id=contact_id)
            now = utcnow()
            upcoming = meetings_by_time(session, reader, given, upcoming=True, now=now, limit=PAGE)
            past = meetings_by_time(session, reader, given, upcoming=False, now=now, limit=PAGE)
            return {
                "upcoming": rows(session, reader.account_id, upcoming),
                "past": rows(session, reader.account_id, past),
                "contact": (
                    {"id": chosen.id, "name": chosen.name or chosen.emails[0].display}
                    if chosen is not None
                    else None
                ),
            }

    found = await asyncio.to_thread(work)
    if found is None:
        return await page(request, here, "not_found.html", 404, what="contact")
    return await page(request, here, "meetings.html", **found)


def rows(
    session: Session, account_id: int, timed: list[tuple[Meeting, datetime | None]]
) -> list[dict[str, Any]]:
    """Meetings as the pages list them (the Meetings page, a contact's timeline), each
    with when it happens (next)."""
    meetings = [m for m, _ in timed]
    contacts = contacts_of(session, account_id, meetings)
    return [_row(m, when, contacts.get(m.id, [])) for m, when in timed]


def _row(
    meeting: Meeting,
    when: datetime | None,
    contacts: list[MeetingContact],
) -> dict[str, Any]:
    people = [a for a in meeting.attendees if not a.resource]
    start = when or meeting.start_at
    length = meeting.end_at - meeting.start_at if meeting.end_at and meeting.start_at else None
    return {
        "id": meeting.id,
        "summary": meeting.summary or "(no title)",
        "when": minutes(start, "time not known"),
        "until": minutes(start + length)[11:] if start and length is not None else "",
        "since": minutes(meeting.start_at)[:10] if meeting.rrule else "",
        "all_day": meeting.all_day,
        "zone": meeting.timezone,
        "repeats": bool(meeting.rrule),
        "cancelled": meeting.status == "cancelled",
        "location": meeting.location,
        "join": meeting.conference_url,
        "organizer": meeting.organizer,
        "people": [
            {"email": a.address, "answer": ANSWERS.get(a.status, a.status.lower())}
            for a in people
            if not a.organizer
        ],
        "rooms": [a.name or a.address for a in meeting.attendees if a.resource],
        "contacts": list(  # one each, however many of its addresses take part
            {c.id: {"id": c.id, "name": c.name or c.email} for c in contacts}.values()
        ),
        "source": SOURCES.get(meeting.source, meeting.source),
    }
