"""Meeting invitations that Outlook sent only as TNEF (winmail.dat), read with tnefparse.

A meeting request, cancellation or response sent in Microsoft's rich format has no
calendar part: the meeting is in MAPI properties (MS-OXOCAL). Read here:

    message class     IPM.Schedule.Meeting.Request / .Canceled / .Resp.Pos|Neg|Tent
    UID               PidLidGlobalObjectId: the UID it carries ("vCal-Uid"), else its
                      hex with the instance date cleared (MS-OXCICAL 2.1.3.1.1.20.26)
    SEQUENCE          PidLidAppointmentSequence
    DTSTAMP           PidLidOwnerCriticalChange, else the message's date
    start, end        PidLidAppointmentStartWhole / EndWhole (UTC), else PidTagStart/EndDate
    time zone         the key name of PidLidAppointmentTimeZoneDefinitionStartDisplay,
                      a Windows name, mapped to IANA
    location          PidLidLocation
    organizer         the sender's SMTP address, else the MIME From
    attendees         attRecipTable (1 required, 2 optional, 3 resource), else To and Cc

Recurrence patterns (PidLidAppointmentRecur) are not decoded: a series is recorded by
its first occurrence. Calendar files attached inside the TNEF are read like any other.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from tnefparse.tnef import TNEF

from gateway.calendar_invites import Attendee, Invite, parse

PSETID_APPOINTMENT = uuid.UUID("00062002-0000-0000-c000-000000000046")
PSETID_MEETING = uuid.UUID("6ed8da90-450b-101b-98da-00aa003f1305")
TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"
_METHODS = {
    "ipm.schedule.meeting.request": ("REQUEST", ""),
    "ipm.microsoft schedule.mtgreq": ("REQUEST", ""),
    "ipm.schedule.meeting.canceled": ("CANCEL", ""),
    "ipm.microsoft schedule.mtgcncl": ("CANCEL", ""),
    "ipm.schedule.meeting.resp.pos": ("REPLY", "ACCEPTED"),
    "ipm.microsoft schedule.mtgrespp": ("REPLY", "ACCEPTED"),
    "ipm.schedule.meeting.resp.neg": ("REPLY", "DECLINED"),
    "ipm.microsoft schedule.mtgrespn": ("REPLY", "DECLINED"),
    "ipm.schedule.meeting.resp.tent": ("REPLY", "TENTATIVE"),
    "ipm.microsoft schedule.mtgrespa": ("REPLY", "TENTATIVE"),
}
_ROLE = {1: "REQ-PARTICIPANT", 2: "OPT-PARTICIPANT", 3: "NON-PARTICIPANT"}


def is_tnef(part: Any) -> bool:
    name = (part.get_filename() or "").lower()
    return part.get_content_type() in TNEF_TYPES or name == "winmail.dat"


def tnef_invites(data: bytes, message: EmailMessage, source: str = "winmail.dat") -> list[Invite]:
    """The invitation in a winmail.dat, with any calendar files it holds (raises on
    what tnefparse cannot read)."""
    tnef = TNEF(data, do_checksum=False)
    out: list[Invite] = []
    for attachment in tnef.attachments:
        name = str(attachment.long_filename() or "")
        if name.lower().endswith(".ics"):
            out += parse(bytes(attachment.data), "", f"{source}/{name}")
    invite = _meeting(tnef, message, source)
    if invite is not None:
        out.append(invite)
    return out


def _meeting(tnef: TNEF, message: EmailMessage, source: str) -> Invite | None:
    props = _Props(tnef)
    kind = str(props.tag(0x001A) or _legacy_class(tnef) or "").strip().lower()
    method, answer = _METHODS.get(kind, ("", ""))
    if not method:
        return None
    uid = _uid(props.named(PSETID_MEETING, 0x0003, raw=True))
    uid = uid or _uid(props.named(PSETID_MEETING, 0x0023, raw=True))
    if not uid:
        return None
    start = _utc(props.named(PSETID_APPOINTMENT, 0x820D) or props.tag(0x0060))
    end = _utc(props.named(PSETID_APPOINTMENT, 0x820E) or props.tag(0x0061))
    stamp = _utc(props.named(PSETID_MEETING, 0x001A)) or _date_of(message)
    sender = str(props.tag(0x5D01) or props.tag(0x5D02) or "").strip().lower()
    senders = getaddresses([str(message.get("From", ""))])
    sender_name = str(props.tag(0x0C1A) or (senders[0][0] if senders else ""))
    sender = sender or (senders[0][1].strip().lower() if senders else "")
    organizer = Attendee(sender, sender_name, "ACCEPTED", "CHAIR") if "@" in sender else None
    attendees = _recipients(tnef) or _header_people(message)
    if method == "REPLY":  # the answer is the sender's; Outlook names no organizer
        who = sender_name, sender
        attendees = (Attendee(who[1], who[0], answer),) if "@" in who[1] else ()
        organizer = None
    sequence = props.named(PSETID_APPOINTMENT, 0x8201)
    return Invite(
        method=method,
        uid=uid[:500],
        recurrence_id=None,
        sequence=sequence if isinstance(sequence, int) else 0,
        dtstamp=stamp,
        summary=str(props.tag(0x0037) or message.get("Subject", "") or "")[:500],
        start=start,
        end=end,
        timezone=_zone(props.named(PSETID_APPOINTMENT, 0x825E, raw=True)),
        location=str(props.named(PSETID_APPOINTMENT, 0x8208) or "")[:500],
        organizer=organizer,
        attendees=attendees,
        cancelled=method == "CANCEL",
        source=source,
    )


class _Props:
    """The message's MAPI properties by tag, and named ones by (GUID, LID)."""

    def __init__(self, tnef: TNEF) -> None:
        self.tags: dict[int, Any] = {}
        self.names: dict[tuple[uuid.UUID, int], Any] = {}
        for prop in tnef.mapiprops:
            if prop.guid:
                self.names[(prop.guid, prop.guid_prop)] = prop
            else:
                self.tags[prop.name] = prop

    def tag(self, tag: int) -> Any:
        prop = self.tags.get(tag)
        return prop.data if prop is not None else None

    def named(self, guid: uuid.UUID, lid: int, raw: bool = False) -> Any:
        prop = self.names.get((guid, lid))
        if prop is None:
            return None
        if raw:  # binary as it is: tnefparse's .data strips trailing zero bytes
            return b"".join(prop.raw_data) if isinstance(prop.raw_data, list) else prop.raw_data
        return prop.data


def _legacy_class(tnef: TNEF) -> str:
    for obj in tnef.msgprops:
        if obj.name == TNEF.ATTMESSAGECLASS:
            return str(obj.data)
    return ""


def _uid(goid: Any) -> str:
    if not isinstance(goid, bytes) or len(goid) < 40:
        return ""
    data = goid[40:]
    if data.startswith(_VCAL_UID):
        return data[len(_VCAL_UID) :].split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    clean = goid[:16] + b"\0\0\0\0" + goid[20:]  # the series, not one instance
    return clean.hex().upper()


def _zone(definition: Any) -> str:
    """The IANA name for the Windows key name a TZDEFINITION starts with."""
    if not isinstance(definition, bytes) or len(definition) < 8:
        return ""
    (count,) = struct.unpack_from("<H", definition, 6)
    key = definition[8 : 8 + 2 * count].decode("utf-16-le", "replace")
    return WINDOWS_TO_OLSON.get(key, "")


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _date_of(message: EmailMessage) -> datetime | None:
    try:
        return _utc(parsedate_to_datetime(str(message.get("Date", ""))))
    except (TypeError, ValueError):
        return None


def _recipients(tnef: TNEF) -> tuple[Attendee, ...]:
    out = []
    for obj in tnef.msgprops:
        if obj.name != TNEF.ATTRECIPTABLE:
            continue
        for row in obj.data:
            values = {prop.name: prop.data for prop in row}
            email = str(values.get(0x39FE) or values.get(0x3003) or "").strip().lower()
            if "@" not in email:
                continue
            kind = values.get(0x0C15)
            out.append(
                Attendee(
                    email=email[:320],
                    name=str(values.get(0x3001) or "")[:200],
                    role=_ROLE.get(kind if isinstance(kind, int) else 1, "REQ-PARTICIPANT"),
                    resource=kind == 3,
                )
            )
    return tuple(out)


def _header_people(message: EmailMessage) -> tuple[Attendee, ...]:
    out = []
    for header, role in (("To", "REQ-PARTICIPANT"), ("Cc", "OPT-PARTICIPANT")):
        for name, email in getaddresses([str(v) for v in message.get_all(header, [])]):
            if "@" in email:
                out.append(Attendee(email.strip().lower()[:320], name[:200], role=role))
    return tuple(out)
