"""Contacts: the account's contacts with a search, and a contact's page: its
addresses, how it came to be (imported, added, or auto-created from which message or
meeting), its next and last meetings, its conversations, newest first, with the mail
in and out of each (a member sees only mail their own sources saw), and "Mail with
this contact missing?", which asks gateway.explain about a Message-ID."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from admin.meeting_pages import rows
from admin.page_kit import Visit, config_of, db_of, minutes, page, visit
from gateway.explain import explain
from gateway.meeting_queries import MeetingFilter, meetings_by_time
from gateway.message_queries import Reader, conversation_messages, conversation_page
from gateway.models import Contact, ContactEmail, Meeting, utcnow

router = APIRouter(include_in_schema=False)
PAGE = 50
CONVERSATIONS = 20
SOURCES = {
    "manual": "added by hand",
    "import": "imported",
    "auto": "created from mail",
    "meeting": "created from a meeting",
}
MEETINGS = 5  # upcoming and past meetings on a contact's page


@router.get("/contacts")
async def contacts(request: Request, q: str = "", after: int = 0) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    q = q.strip()[:320]

    def work() -> list[dict[str, Any]]:
        with db_of(request).read() as session:
            query = (
                select(Contact)
                .where(Contact.account_id == here.person.account_id)
                .options(selectinload(Contact.emails))
                .order_by(Contact.id)
                .limit(PAGE + 1)
            )
            if 0 < after < 2**63:
                query = query.where(Contact.id > after)
            if q and "\x00" not in q:
                like = f"%{q.lower()}%"
                has = select(ContactEmail.contact_id).where(ContactEmail.address.like(like))
                query = query.where(or_(func.lower(Contact.name).like(like), Contact.id.in_(has)))
            return [
                {
                    "id": c.id,
                    "name": c.name,
                    "emails": [e.display for e in c.emails],
                    "source": SOURCES.get(c.source, c.source),
                }
                for c in session.scalars(query)
            ]

    rows = await asyncio.to_thread(work)
    more = rows[PAGE]["id"] if len(rows) > PAGE else None
    return await page(
        request,
        here,
        "contacts.html",
        contacts=rows[:PAGE],
        q=q,
        more=rows[PAGE - 1]["id"] if more else None,
    )


@router.get("/contacts/{contact_id}")
async def contact(contact_id: int, request: Request, message_id: str = "") -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    config = config_of(request)
    reader = Reader(here.principal.account_id, here.principal.user_id)
    message_id = message_id.strip()[:998]

    def work() -> dict[str, Any] | None:
        with db_of(request).read() as session:
            found = (
                session.scalar(
                    select(Contact)
                    .where(Contact.id == contact_id, Contact.account_id == here.person.account_id)
                    .options(selectinload(Contact.emails))
                )
                if 0 < contact_id < 2**63
                else None
            )
            if found is None:
                return None
            emails = [e.display for e in found.emails]
            card = {
                "id": found.id,
                "name": found.name,
                "emails": emails,
                "source": SOURCES.get(found.source, found.source),
                "source_message_id": found.source_message_id,
                "source_meeting": _meeting_name(session, found.source_meeting_id),
                "created": found.created_at.isoformat()[:10],
                "timeline": _timeline(session, reader, found.id),
                "upcoming": _meetings(session, reader, found.id, upcoming=True),
                "past": _meetings(session, reader, found.id, upcoming=False),
                "why": None,
            }
            if message_id and all(c.isprintable() for c in message_id):
                answer = explain(
                    session,
                    config,
                    here.person.account_id,
                    message_id,
                    emails[0] if emails else None,
                    reader.user_id,
                )
                card["why"] = {
                    "answer": answer.answer,
                    "findings": [{"where": f.where, "reason": f.reason} for f in answer.findings],
                }
            return card

    card = await asyncio.to_thread(work)
    if card is None:
        return await page(request, here, "not_found.html", 404, what="contact")
    return await page(request, here, "contact.html", contact=card, message_id=message_id)


def _meetings(
    session: Session, reader: Reader, contact_id: int, *, upcoming: bool
) -> list[dict[str, Any]]:
    found = meetings_by_time(
        session,
        reader,
        MeetingFilter(contact_id=contact_id),
        upcoming=upcoming,
        now=utcnow(),
        limit=MEETINGS,
    )
    return rows(session, reader.account_id, found)


def _meeting_name(session: Session, meeting_id: int | None) -> str:
    if meeting_id is None:
        return ""
    meeting = session.get(Meeting, meeting_id)
    return meeting.summary or "a meeting" if meeting is not None else ""


def _timeline(session: Session, reader: Reader, contact_id: int) -> list[dict[str, Any]]:
    """The contact's newest conversations, each with its messages in the order sent."""
    out = []
    for conversation_id in conversation_page(session, reader, contact_id, 0, CONVERSATIONS):
        found = conversation_messages(session, reader, conversation_id)
        if found is None:
            continue
        conversation, messages = found
        out.append(
            {
                "subject": conversation.subject or "(no subject)",
                "messages": [
                    {
                        "id": m.id,
                        "date": minutes(m.sent_at),
                        "direction": m.direction,
                        "from": ", ".join(a.get("email", "") for a in m.from_addresses),
                        "subject": m.subject,
                    }
                    for m in messages
                ],
            }
        )
    return out
