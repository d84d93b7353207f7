"""Reading meetings as the API and the pages show them, for one reader.

An admin (user_id None) sees the account's meetings; a member sees those that came
from their own mail or calendars, and those they are invited to by one of their
addresses. A contact's meetings are those where one of its addresses is the
organizer or an attendee.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from gateway.message_queries import Reader
from gateway.models import Contact, ContactEmail, Meeting, MeetingAttendee, UserAddress


@dataclass(frozen=True)
class MeetingFilter:
    contact_id: int | None = None
    since: datetime | None = None  # starts at or after
    until: datetime | None = None  # starts before
    status: str | None = None  # confirmed | cancelled


def visible(reader: Reader) -> Any:
    """The condition on Meeting for what `reader` may see."""
    mine = Meeting.account_id == reader.account_id
    if reader.user_id is None:
        return mine
    invited = exists().where(
        MeetingAttendee.meeting_id == Meeting.id,
        MeetingAttendee.address.in_(
            select(UserAddress.address).where(UserAddress.user_id == reader.user_id)
        ),
    )
    return and_(mine, or_(Meeting.owner_user_id == reader.user_id, invited))


def with_contact(contact_id: int) -> Any:
    """The condition on Meeting: the contact is its organizer or an attendee."""
    return exists().where(
        MeetingAttendee.meeting_id == Meeting.id,
        MeetingAttendee.address.in_(
            select(ContactEmail.address).where(ContactEmail.contact_id == contact_id)
        ),
    )


def _filtered(reader: Reader, given: MeetingFilter) -> Select[Any]:
    query = select(Meeting).where(visible(reader))
    if given.contact_id is not None:
        query = query.where(with_contact(given.contact_id))
    if given.since is not None:
        query = query.where(Meeting.start_at >= given.since)
    if given.until is not None:
        query = query.where(Meeting.start_at < given.until)
    if given.status is not None:
        query = query.where(Meeting.status == given.status)
    return query.options(selectinload(Meeting.attendees))


def meeting_page(
    session: Session, reader: Reader, given: MeetingFilter, after: int, limit: int
) -> Sequence[Meeting]:
    """Meetings by id (the order in which they were learnt), after id `after`."""
    query = _filtered(reader, given).where(Meeting.id > after).order_by(Meeting.id).limit(limit)
    return session.scalars(query).all()


def meetings_by_time(
    session: Session,
    reader: Reader,
    given: MeetingFilter,
    *,
    upcoming: bool,
    now: datetime,
    limit: int,
) -> list[tuple[Meeting, datetime | None]]:
    """Upcoming meetings soonest first, or past ones latest first (for the pages), each
    with when it happens next: a series that still repeats is upcoming, at its next
    occurrence, however long ago it started."""
    query = _filtered(reader, given)
    series = Meeting.rrule != ""
    if upcoming:
        query = query.where(or_(Meeting.end_at >= now, Meeting.start_at >= now, series))
        found = session.scalars(query.order_by(Meeting.start_at, Meeting.id)).all()
        timed = [(m, next_start(m, now)) for m in found]
        ahead: list[tuple[Meeting, datetime | None]] = [
            (m, when) for m, when in timed if when is not None
        ]
        ahead.sort(key=lambda pair: (pair[1] or now, pair[0].id))
        return ahead[:limit]
    ended = or_(Meeting.end_at.is_(None), Meeting.end_at < now)
    query = query.where(Meeting.start_at < now, ended)
    query = query.order_by(Meeting.start_at.desc(), Meeting.id.desc())
    out: list[tuple[Meeting, datetime | None]] = []
    for meeting in session.scalars(query.limit(limit * 4)):
        if meeting.rrule and next_start(meeting, now) is not None:
            continue  # still repeating: listed as upcoming
        out.append((meeting, meeting.start_at))
        if len(out) == limit:
            break
    return out


def next_start(meeting: Meeting, now: datetime) -> datetime | None:
    """When the meeting happens next (now included while it is on): its start, or for
    a series the next occurrence by its rule, in the zone it was set in (so a weekly
    10:00 stays at 10:00 across daylight saving); None when it is over."""
    if meeting.start_at is None:
        return None
    if not meeting.rrule:
        end = meeting.end_at or meeting.start_at
        return meeting.start_at if end >= now else None
    try:
        zone = ZoneInfo(meeting.timezone) if meeting.timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    length = (meeting.end_at - meeting.start_at) if meeting.end_at else timedelta(0)
    try:
        rule = rrulestr(meeting.rrule, dtstart=meeting.start_at.astimezone(zone))
        found = rule.after((now - length).astimezone(zone), inc=True)
    except (ValueError, TypeError, OverflowError):
        return meeting.start_at if meeting.start_at >= now else None
    return found.astimezone(UTC) if found is not None else None


def visible_meeting(session: Session, reader: Reader, meeting_id: int) -> Meeting | None:
    query = select(Meeting).where(Meeting.id == meeting_id, visible(reader))
    return session.scalar(query.options(selectinload(Meeting.attendees)))


@dataclass(frozen=True)
class MeetingContact:
    id: int
    email: str  # the address it takes part by
    name: str


def contacts_of(
    session: Session, account_id: int, meetings: Sequence[Meeting]
) -> dict[int, list[MeetingContact]]:
    """meeting id -> the contacts among its people, with the address each came by."""
    addresses = {a.address for m in meetings for a in m.attendees}
    if not addresses:
        return {}
    rows = session.execute(
        select(ContactEmail.address, Contact.id, Contact.name)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.account_id == account_id, ContactEmail.address.in_(sorted(addresses)))
    )
    found = {str(a): MeetingContact(int(c), str(a), str(n)) for a, c, n in rows}
    return {m.id: [found[a.address] for a in m.attendees if a.address in found] for m in meetings}
