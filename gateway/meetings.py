"""Meetings: an invitation (from mail or a calendar) applied to the account's store.

    REQUEST, ADD   create the meeting, or update it when this version is newer
    REPLY          the answering attendee's status (Outlook's names no ORGANIZER);
                   a reply to a meeting not seen yet records it from the reply
    CANCEL         the meeting (or the one occurrence) is cancelled
    snapshot       a synced calendar's copy: it is what the calendar holds now

One meeting per (account, UID, RECURRENCE-ID), whichever way it came; (SEQUENCE,
DTSTAMP) decides which version wins, and an attendee's answer is kept against an
older invitation. Its organizer and attendees that are contacts are its contacts;
with auto-create on, new ones become contacts (source "meeting"), except the
account's users, dropbox addresses, no-reply style and blocked domains, and rooms.
Each change is announced: meeting.created, meeting.updated, meeting.cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from gateway import events
from gateway.addresses import normalize
from gateway.calendar_invites import Attendee, Invite
from gateway.config import Config
from gateway.contacts import create_contact
from gateway.directory import AccountDirectory
from gateway.matching import match_contacts
from gateway.models import Event, Meeting, MeetingAttendee, MeetingStatus, utcnow

log = logging.getLogger(__name__)
_EPOCH = datetime.min.replace(tzinfo=UTC)
_DETAILS = ("summary", "location", "conference_url", "rrule", "timezone", "all_day")


@dataclass(frozen=True)
class Origin:
    """Where an invitation was read."""

    source: str  # mail | caldav | graph
    user_id: int | None = None
    message_id: int | None = None
    snapshot: bool = False  # a calendar's current copy of the event


@dataclass(frozen=True)
class Applied:
    meeting_id: int
    change: str  # created | updated | cancelled | "" (an older version: nothing changed)
    contact_ids: tuple[int, ...] = ()
    created_contact_ids: tuple[int, ...] = ()


def apply_invite(
    session: Session,
    config: Config,
    directory: AccountDirectory,
    invite: Invite,
    origin: Origin,
    known: dict[tuple[str, str], Meeting] | None = None,
) -> Applied | None:
    """Apply `invite` to the store; None when it is not an invitation (PUBLISH).
    `known`: the meetings of a batch already read (find_many), none other exists."""
    if not origin.snapshot and invite.method not in ("REQUEST", "ADD", "REPLY", "CANCEL"):
        return None
    if known is not None:
        meeting = known.get(invite.key)
    else:
        meeting = find(session, directory.account_id, invite.uid, invite.recurrence_id or "")
    was_cancelled = meeting is not None and meeting.status == MeetingStatus.CANCELLED.value
    created = meeting is None
    case = config.addresses.local_part_case
    if meeting is None:
        meeting = _new_meeting(directory, invite, origin, case, utcnow())
        session.add(meeting)
    if invite.method == "REPLY" and not origin.snapshot:
        changed = _answers(meeting, invite, case) or created
    elif created or origin.snapshot or meeting.from_reply or invite.version > _version(meeting):
        if invite.method != "CANCEL" or created:  # a CANCEL changes only the status
            if not created:  # a new one has its details already
                _details(meeting, invite, case)
            _attendees(meeting, invite, case)
        changed = True
    else:
        changed = False
    if not changed:
        return Applied(meeting.id, "")
    if invite.method != "REPLY" or origin.snapshot:
        meeting.sequence = max(meeting.sequence, invite.sequence)
        meeting.dtstamp = invite.dtstamp or meeting.dtstamp
        meeting.status = (
            MeetingStatus.CANCELLED if invite.cancelled else MeetingStatus.CONFIRMED
        ).value
        meeting.from_reply = False
    meeting.message_id = origin.message_id or meeting.message_id
    meeting.updated_at = utcnow()
    session.flush()
    contact_ids, new_contacts = _contacts(session, config, directory, meeting)
    cancelled = meeting.status == MeetingStatus.CANCELLED.value
    change = "created" if created else "cancelled" if cancelled and not was_cancelled else "updated"
    kind = {
        "created": events.MEETING_CREATED,
        "updated": events.MEETING_UPDATED,
        "cancelled": events.MEETING_CANCELLED,
    }[change]
    payload = describe(meeting)
    payload.update(contact_ids=contact_ids, auto_created_contact_ids=new_contacts)
    payload.update(source=origin.source, message_id=origin.message_id, method=invite.method)
    events.emit(session, directory.account_id, kind, **payload)
    return Applied(meeting.id, change, tuple(contact_ids), tuple(new_contacts))


def cancel_meetings(
    session: Session, account_id: int, uid: str, source: str, reason: str
) -> list[int]:
    """Every meeting of `uid` cancelled (a calendar no longer holds it); their ids."""
    meetings = session.scalars(
        select(Meeting)
        .where(Meeting.account_id == account_id, Meeting.uid == uid)
        .options(selectinload(Meeting.attendees))
    ).all()
    done = []
    for meeting in meetings:
        if meeting.status == MeetingStatus.CANCELLED.value:
            continue
        meeting.status = MeetingStatus.CANCELLED.value
        meeting.updated_at = utcnow()
        payload = describe(meeting)
        payload.update(source=source, reason=reason)
        events.emit(session, account_id, events.MEETING_CANCELLED, **payload)
        done.append(meeting.id)
    return done


def find(session: Session, account_id: int, uid: str, recurrence_id: str) -> Meeting | None:
    return session.scalar(
        select(Meeting)
        .where(
            Meeting.account_id == account_id,
            Meeting.uid == uid,
            Meeting.recurrence_id == recurrence_id,
        )
        .options(selectinload(Meeting.attendees))
    )


def create_meetings(
    session: Session,
    config: Config,
    directory: AccountDirectory,
    invites: list[Invite],
    origin: Origin,
) -> list[Applied]:
    """Meetings none of which exists yet, written at once (a calendar's first sync):
    one INSERT ... RETURNING for the meetings, one for their attendees, one for their
    meeting.created events. Contacts are linked, not created: with auto-create on,
    callers apply_invite() one by one."""
    if not invites:
        return []
    case = config.addresses.local_part_case
    now = utcnow()
    made = [_new_meeting(directory, invite, origin, case, now) for invite in invites]
    columns = [c.key for c in Meeting.__table__.columns if c.key != "id"]
    rows = [{name: getattr(m, name) for name in columns} for m in made]
    ids = session.execute(
        insert(Meeting).returning(Meeting.id, sort_by_parameter_order=True), rows
    ).scalars()
    people: list[dict[str, Any]] = []
    for meeting, meeting_id, invite in zip(made, ids, invites, strict=True):
        meeting.id = meeting_id
        organizer = normalize(invite.organizer.email, case) if invite.organizer else None
        for key, person in _people(invite, case).items():
            people.append(
                {
                    "meeting_id": meeting_id,
                    "account_id": directory.account_id,
                    "address": key,
                    "name": person.name,
                    "organizer": key == organizer,
                    "status": person.status,
                    "role": person.role,
                    "resource": person.resource,
                    "status_at": None,
                }
            )
    if people:
        session.execute(insert(MeetingAttendee), people)
    matched = match_contacts(
        session,
        directory.account_id,
        {
            p["address"]
            for p in people
            if not p["resource"] and directory.can_be_contact(p["address"])
        },
    )
    by_meeting: dict[int, list[dict[str, Any]]] = {}
    for row in people:
        by_meeting.setdefault(row["meeting_id"], []).append(row)
    out, announced = [], []
    for meeting in made:
        mine = sorted(by_meeting.get(meeting.id, []), key=lambda p: str(p["address"]))
        contact_ids = sorted({matched[p["address"]] for p in mine if p["address"] in matched})
        payload = describe(meeting, mine)
        payload.update(
            contact_ids=contact_ids,
            auto_created_contact_ids=[],
            source=origin.source,
            message_id=origin.message_id,
            method="REQUEST",
        )
        announced.append(
            {
                "account_id": directory.account_id,
                "kind": events.MEETING_CREATED,
                "payload": payload,
                "created_at": now,
            }
        )
        out.append(Applied(meeting.id, "created", tuple(contact_ids)))
    session.execute(insert(Event), announced)
    return out


def find_many(session: Session, account_id: int, uids: list[str]) -> dict[tuple[str, str], Meeting]:
    """The meetings of these UIDs (every occurrence), by (UID, RECURRENCE-ID)."""
    found: dict[tuple[str, str], Meeting] = {}
    for at in range(0, len(uids), 500):
        rows = session.scalars(
            select(Meeting)
            .where(Meeting.account_id == account_id, Meeting.uid.in_(uids[at : at + 500]))
            .options(selectinload(Meeting.attendees))
        )
        found.update({(m.uid, m.recurrence_id): m for m in rows})
    return found


def describe(meeting: Meeting, attendees: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The meeting as the API and the webhooks show it (`attendees` as rows, for a
    meeting written by create_meetings)."""
    people = (
        attendees
        if attendees is not None
        else [
            {
                "address": a.address,
                "name": a.name,
                "status": a.status,
                "role": a.role,
                "organizer": a.organizer,
                "resource": a.resource,
            }
            for a in meeting.attendees
        ]
    )
    return {
        "meeting_id": meeting.id,
        "uid": meeting.uid,
        "recurrence_id": meeting.recurrence_id or None,
        "summary": meeting.summary,
        "start": meeting.start_at.isoformat() if meeting.start_at else None,
        "end": meeting.end_at.isoformat() if meeting.end_at else None,
        "all_day": meeting.all_day,
        "timezone": meeting.timezone or None,
        "rrule": meeting.rrule or None,
        "location": meeting.location,
        "conference_url": meeting.conference_url or None,
        "organizer": meeting.organizer or None,
        "status": meeting.status,
        "sequence": meeting.sequence,
        "attendees": [
            {
                "email": p["address"],
                "name": p["name"],
                "status": p["status"],
                "role": p["role"],
                "organizer": p["organizer"],
                "resource": p["resource"],
            }
            for p in people
        ],
    }


# -- the parts of an invitation ------------------------------------------------------------


def _new_meeting(
    directory: AccountDirectory, invite: Invite, origin: Origin, case: str, now: datetime
) -> Meeting:
    """A meeting first learnt from `invite`, not yet in the session. Known only from an
    answer, it takes no version or status from it: any invitation replaces it."""
    reply = invite.method == "REPLY" and not origin.snapshot
    cancelled = invite.cancelled and not reply
    meeting = Meeting(
        account_id=directory.account_id,
        owner_user_id=origin.user_id,
        uid=invite.uid,
        recurrence_id=invite.recurrence_id or "",
        sequence=0 if reply else invite.sequence,
        dtstamp=None if reply else invite.dtstamp,
        from_reply=reply,
        organizer="",
        status=(MeetingStatus.CANCELLED if cancelled else MeetingStatus.CONFIRMED).value,
        source=origin.source,
        message_id=origin.message_id,
        created_at=now,
        updated_at=now,
        attendees=[],
    )
    _details(meeting, invite, case)
    return meeting


def _version(meeting: Meeting) -> tuple[int, datetime]:
    return meeting.sequence, meeting.dtstamp or _EPOCH


def _details(meeting: Meeting, invite: Invite, case: str) -> None:
    for name in _DETAILS:
        setattr(meeting, name, getattr(invite, name))
    meeting.start_at = invite.start
    meeting.end_at = invite.end
    if invite.organizer is not None:
        meeting.organizer = normalize(invite.organizer.email, case) or meeting.organizer


def _people(invite: Invite, case: str) -> dict[str, Attendee]:
    out: dict[str, Attendee] = {}
    if invite.organizer is not None:
        key = normalize(invite.organizer.email, case)
        if key:
            out[key] = invite.organizer
    for person in invite.attendees:
        key = normalize(person.email, case)
        if key:
            out[key] = person  # the organizer's own PARTSTAT, when listed, wins
    return out


def _attendees(meeting: Meeting, invite: Invite, case: str) -> None:
    """The invitation's attendees; an answer newer than the invitation is kept."""
    people = _people(invite, case)
    if not people:
        return
    stamp = invite.dtstamp or _EPOCH
    existing = {a.address: a for a in meeting.attendees}
    organizer = normalize(invite.organizer.email, case) if invite.organizer else None
    rows = []
    for key, person in people.items():
        row = existing.get(key) or MeetingAttendee(account_id=meeting.account_id, address=key)
        row.name = person.name or row.name or ""
        row.role = person.role
        row.resource = person.resource
        row.organizer = key == organizer
        if row.status_at is None or row.status_at <= stamp:
            row.status = person.status
        rows.append(row)
    meeting.attendees = rows


def _answers(meeting: Meeting, invite: Invite, case: str) -> bool:
    """A REPLY: each answering attendee's status, unless an answer as new is known."""
    stamp = invite.dtstamp or utcnow()
    existing = {a.address: a for a in meeting.attendees}
    changed = False
    for key, person in _people(invite, case).items():
        if invite.organizer is not None and person is invite.organizer:
            continue  # some clients repeat the organizer in a REPLY
        row = existing.get(key)
        if row is None:
            row = MeetingAttendee(account_id=meeting.account_id, address=key, name=person.name)
            meeting.attendees.append(row)
            existing[key] = row
        elif row.status_at is not None and row.status_at > stamp:
            continue
        row.status, row.status_at = person.status, stamp
        row.resource = row.resource or person.resource
        changed = True
    return changed


def _contacts(
    session: Session, config: Config, directory: AccountDirectory, meeting: Meeting
) -> tuple[list[int], list[int]]:
    """The meeting's contacts, with new attendees created as contacts if the account
    auto-creates: (contact ids, those created now)."""
    people = [
        a for a in meeting.attendees if not a.resource and directory.can_be_contact(a.address)
    ]
    matched = match_contacts(session, meeting.account_id, [a.address for a in people])
    created: list[int] = []
    if directory.auto_create:
        new = [a for a in people if a.address not in matched]
        new = [a for a in new if directory.can_auto_create(a.address)]
        cap = config.contacts.auto_create_max_per_message
        for person in new[:cap]:
            contact = create_contact(
                session,
                directory,
                [(person.address, person.address)],
                name=person.name,
                source="meeting",
                source_meeting_id=meeting.id,
            )
            matched[person.address] = contact.id
            created.append(contact.id)
            log.info(
                "auto-created contact %s <%s> from meeting %s (%s)",
                contact.id,
                person.address,
                meeting.id,
                meeting.summary,
            )
    return sorted(set(matched.values())), created
