"""Meeting invitations (iTIP, RFC 5546) and calendar entries, read with icalendar.

`parse(data, method)` reads one calendar (a text/calendar part, an .ics file, a
CalDAV resource) and gives one Invite per event: its METHOD (from the calendar,
else the one the caller read from the part's Content-Type), UID and RECURRENCE-ID
(which occurrence of a series), SEQUENCE and DTSTAMP (which version wins),
summary, start and end in UTC with the time zone's IANA name (Outlook's Windows
names mapped), the recurrence rule, location, conference link, organizer and
attendees with their participation status. gateway.mail_invites finds the
calendars in a message.

PUBLISH is an "add to calendar" file, not an invitation: `Invite.invitation` is
False for it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

log = logging.getLogger(__name__)

METHODS = ("REQUEST", "REPLY", "CANCEL", "PUBLISH", "COUNTER", "REFRESH", "ADD")
CALENDAR_TYPES = ("text/calendar", "application/ics", "text/x-vcalendar")
_CONFERENCE = re.compile(
    r"https://(?:[\w-]+\.)*(?:zoom\.us|meet\.google\.com|teams\.microsoft\.com|"
    r"teams\.live\.com|webex\.com|whereby\.com|gotomeeting\.com)/[^\s\"<>]*",
    re.IGNORECASE,
)
_RESOURCE_DOMAINS = ("resource.calendar.google.com",)
MAX_CALENDAR = 2 * 1024 * 1024  # bytes of one calendar part read


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str = ""
    status: str = "NEEDS-ACTION"  # PARTSTAT: ACCEPTED, DECLINED, TENTATIVE, ...
    role: str = "REQ-PARTICIPANT"
    resource: bool = False  # a room or equipment, never a contact


@dataclass(frozen=True)
class Invite:
    method: str
    uid: str
    recurrence_id: str | None  # the occurrence (UTC ISO), None for the whole event
    sequence: int
    dtstamp: datetime | None
    summary: str = ""
    start: datetime | None = None  # UTC
    end: datetime | None = None
    all_day: bool = False
    timezone: str = ""  # IANA name of the start's zone ("" when floating or UTC)
    rrule: str = ""
    location: str = ""
    conference_url: str = ""
    organizer: Attendee | None = None
    attendees: tuple[Attendee, ...] = ()
    cancelled: bool = False
    source: str = ""  # where in the message: "text/calendar" or the .ics file name

    @property
    def invitation(self) -> bool:
        """Something to put on a calendar, or an answer to one (not PUBLISH)."""
        return self.method in ("REQUEST", "REPLY", "CANCEL", "ADD", "COUNTER")

    @property
    def key(self) -> tuple[str, str]:
        return self.uid, self.recurrence_id or ""

    @property
    def version(self) -> tuple[int, datetime]:
        return self.sequence, self.dtstamp or datetime.min.replace(tzinfo=UTC)


def parse(data: bytes, method: str = "", source: str = "") -> list[Invite]:
    """The events of one calendar (raises on what icalendar cannot read)."""
    if len(data) > MAX_CALENDAR:
        raise ValueError(f"a calendar of {len(data)} bytes, over {MAX_CALENDAR}")
    calendar = icalendar.Calendar.from_ical(data)
    said = str(calendar.get("METHOD", "") or "").strip().upper()
    method = said or method or "PUBLISH"  # no method anywhere: a plain calendar file
    out = []
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "") or "").strip()
        if not uid:
            continue
        start, all_day, zone = _when(event, "DTSTART")
        end, _, _ = _when(event, "DTEND")
        organizer = _person(event.get("ORGANIZER"))
        attendees = event.get("ATTENDEE") or []
        if not isinstance(attendees, list):
            attendees = [attendees]
        people = tuple(p for p in (_person(a) for a in attendees) if p is not None)
        status = str(event.get("STATUS", "") or "").upper()
        recurrence = event.get("RECURRENCE-ID")
        out.append(
            Invite(
                method=method,
                uid=uid[:500],
                recurrence_id=_utc_text(recurrence.dt) if recurrence is not None else None,
                sequence=_int(event.get("SEQUENCE")),
                dtstamp=_utc(event.decoded("DTSTAMP")) if event.get("DTSTAMP") else None,
                summary=str(event.get("SUMMARY", "") or "")[:500],
                start=start,
                end=end,
                all_day=all_day,
                timezone=zone,
                rrule=_text(event["RRULE"].to_ical()) if event.get("RRULE") else "",
                location=str(event.get("LOCATION", "") or "")[:500],
                conference_url=_conference(event),
                organizer=organizer,
                attendees=people,
                cancelled=method == "CANCEL" or status == "CANCELLED",
                source=source,
            )
        )
    return out


# -- the values ---------------------------------------------------------------------------


def _when(event: Any, name: str) -> tuple[datetime | None, bool, str]:
    """(the time in UTC, whether it is a whole day, the zone's IANA name)."""
    prop = event.get(name)
    if prop is None:
        return None, False, ""
    value = prop.dt
    tzid = str(prop.params.get("TZID", "") or "")
    zone = iana_zone(tzid)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # floating time: in the named zone if we know it
            value = value.replace(tzinfo=ZoneInfo(zone)) if zone else value.replace(tzinfo=UTC)
        utc = value.utcoffset() == timedelta(0)
        return value.astimezone(UTC), False, zone or ("UTC" if utc else "")
    if isinstance(value, date):
        return datetime.combine(value, time(0), UTC), True, ""
    return None, False, ""


def iana_zone(tzid: str) -> str:
    """An IANA zone name for a TZID (Windows names mapped; "" when unknown)."""
    if not tzid:
        return ""
    name = WINDOWS_TO_OLSON.get(tzid, tzid).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return name


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _utc_text(value: Any) -> str:
    if isinstance(value, datetime):
        stamp = _utc(value)
        return stamp.strftime("%Y%m%dT%H%M%SZ") if stamp else ""
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return str(value)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0  # iCloud leaves SEQUENCE out: version 0


def _person(value: Any) -> Attendee | None:
    if value is None:
        return None
    text = str(value).strip()
    email = text[7:] if text.lower().startswith("mailto:") else text
    email = email.strip().lower()
    if "@" not in email:
        return None
    params = getattr(value, "params", {})
    kind = str(params.get("CUTYPE", "") or "").upper()
    resource = kind in ("RESOURCE", "ROOM") or email.endswith(_RESOURCE_DOMAINS)
    return Attendee(
        email=email[:320],
        name=str(params.get("CN", "") or "").strip()[:200],
        status=str(params.get("PARTSTAT", "NEEDS-ACTION") or "NEEDS-ACTION").upper()[:20],
        role=str(params.get("ROLE", "REQ-PARTICIPANT") or "REQ-PARTICIPANT").upper()[:20],
        resource=resource,
    )


def _conference(event: Any) -> str:
    for name in ("X-GOOGLE-CONFERENCE", "X-MICROSOFT-SKYPETEAMSMEETINGURL", "URL"):
        value = event.get(name)
        if value and _CONFERENCE.search(str(value)):
            return str(value).strip()[:500]
    for name in ("LOCATION", "DESCRIPTION"):
        found = _CONFERENCE.search(str(event.get(name, "") or ""))
        if found:
            return found.group(0)[:500]
    return ""
