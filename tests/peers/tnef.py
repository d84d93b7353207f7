"""A TNEF writer for the tests: the winmail.dat of an Outlook meeting request or
cancellation sent over a path that keeps Microsoft's rich format (MS-OXTNEF): the
TNEF version and code page, attMessageClass and attSubject, attDateStart/End,
attMAPIProps with the message class, subject, sender, start and end, and the
named properties of PSETID_Appointment (start and end whole, sequence, location,
the Windows time-zone definition) and PSETID_Meeting (the global object id that
becomes the UID, the owner's critical change that is the DTSTAMP), and
attRecipTable with the attendees. No calendar part beside it."""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

SIGNATURE = 0x223E9F78
PSETID_APPOINTMENT = uuid.UUID("00062002-0000-0000-c000-000000000046")
PSETID_MEETING = uuid.UUID("6ed8da90-450b-101b-98da-00aa003f1305")
GOID_PREFIX = bytes.fromhex("040000008200E00074C5B7101A82E008")
PT_INT, PT_BOOL, PT_STRING8, PT_UNICODE, PT_SYSTIME, PT_BINARY = (
    0x0003,
    0x000B,
    0x001E,
    0x001F,
    0x0040,
    0x0102,
)


def _attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    head = struct.pack("<BHHI", level, name, kind, len(data))
    return head + data + struct.pack("<H", sum(data) & 0xFFFF)


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _filetime(when: datetime) -> bytes:
    seconds = (when - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()
    return struct.pack("<Q", int(seconds * 10_000_000))


def _value(kind: int, value: object) -> bytes:
    if kind == PT_INT:
        assert isinstance(value, int)
        return struct.pack("<i", value)
    if kind == PT_BOOL:
        return struct.pack("<HH", int(bool(value)), 0)
    if kind == PT_SYSTIME:
        assert isinstance(value, datetime)
        return _filetime(value)
    if kind == PT_UNICODE:
        assert isinstance(value, str)
        data = (value + "\0").encode("utf-16-le")
    elif kind == PT_STRING8:
        assert isinstance(value, str)
        data = (value + "\0").encode("cp1252")
    else:
        assert isinstance(value, bytes)
        data = value
    return struct.pack("<II", 1, len(data)) + _padded(data)


Prop = tuple[int, int, object] | tuple[uuid.UUID, int, int, object]


def _props(props: Sequence[Prop]) -> bytes:
    out = struct.pack("<I", len(props))
    for prop in props:
        if isinstance(prop[0], uuid.UUID):
            guid, lid, kind, value = prop
            out += struct.pack("<HH", kind, 0x8000) + guid.bytes_le + struct.pack("<II", 0, lid)
        else:
            tag, kind, value = prop
            out += struct.pack("<HH", kind, tag)
        out += _value(kind, value)
    return out


def _typtime(when: datetime) -> bytes:
    return struct.pack(
        "<7H", when.year, when.month, when.day, when.hour, when.minute, when.second, 0
    )


def _tz_definition(key: str) -> bytes:
    """A TZDEFINITION (MS-OXOCAL 2.2.1.42) naming the zone; its rules are not read."""
    name = key.encode("utf-16-le")
    return struct.pack("<BBHHH", 2, 1, 6 + len(name), 0x0002, len(key)) + name


def global_object_id(marker: bytes) -> bytes:
    """PidLidGlobalObjectId of a single meeting (no instance date), `marker` its data."""
    created = _filetime(datetime(2026, 12, 4, 8, 0, tzinfo=UTC))
    return GOID_PREFIX + b"\0\0\0\0" + created + b"\0" * 8 + struct.pack("<I", len(marker)) + marker


def meeting_tnef(
    *,
    message_class: str = "IPM.Schedule.Meeting.Request",
    subject: str = "Budget 2027",
    start: datetime = datetime(2026, 12, 16, 13, 0, tzinfo=UTC),
    end: datetime = datetime(2026, 12, 16, 14, 0, tzinfo=UTC),
    sequence: int = 0,
    stamp: datetime = datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
    location: str = "Room 4.12",
    organizer: str = "frank@partner.example",
    attendees: Sequence[tuple[str, str, int]] = (
        ("Bob", "bob@acme.com", 1),
        ("Grace Partner", "grace@partner.example", 2),
    ),
    marker: bytes = bytes.fromhex("8b6e5a0c1d2e3f405162738495a6b7c8"),
    zone: str = "W. Europe Standard Time",
) -> bytes:
    goid = global_object_id(marker)
    legacy_class = {
        "IPM.Schedule.Meeting.Request": "IPM.Microsoft Schedule.MtgReq",
        "IPM.Schedule.Meeting.Canceled": "IPM.Microsoft Schedule.MtgCncl",
    }.get(message_class, message_class)
    mapi = _props(
        [
            (0x001A, PT_STRING8, message_class),
            (0x0037, PT_UNICODE, subject),
            (0x0060, PT_SYSTIME, start),
            (0x0061, PT_SYSTIME, end),
            (0x0C1A, PT_UNICODE, "Frank Partner"),
            (0x5D01, PT_UNICODE, organizer),
            (PSETID_APPOINTMENT, 0x8201, PT_INT, sequence),
            (PSETID_APPOINTMENT, 0x8208, PT_UNICODE, location),
            (PSETID_APPOINTMENT, 0x820D, PT_SYSTIME, start),
            (PSETID_APPOINTMENT, 0x820E, PT_SYSTIME, end),
            (PSETID_APPOINTMENT, 0x8223, PT_BOOL, False),
            (PSETID_APPOINTMENT, 0x825E, PT_BINARY, _tz_definition(zone)),
            (PSETID_MEETING, 0x0003, PT_BINARY, goid),
            (PSETID_MEETING, 0x0023, PT_BINARY, goid),
            (PSETID_MEETING, 0x001A, PT_SYSTIME, stamp),
        ]
    )
    rows = struct.pack("<I", len(attendees))
    for name, email, kind in attendees:
        rows += _props(
            [
                (0x3001, PT_UNICODE, name),
                (0x3002, PT_UNICODE, "SMTP"),
                (0x3003, PT_UNICODE, email),
                (0x39FE, PT_UNICODE, email),
                (0x0C15, PT_INT, kind),
            ]
        )
    return (
        struct.pack("<IH", SIGNATURE, 0x1234)
        + _attribute(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
        + _attribute(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))
        + _attribute(1, 0x8008, 0x0007, legacy_class.encode() + b"\0")
        + _attribute(1, 0x8004, 0x0001, subject.encode("cp1252") + b"\0")
        + _attribute(1, 0x0006, 0x0003, _typtime(start))
        + _attribute(1, 0x0007, 0x0003, _typtime(end))
        + _attribute(1, 0x9004, 0x0006, rows)
        + _attribute(1, 0x9003, 0x0006, mapi)
    )


def outlook_tnef_only(tnef: bytes | None = None, subject: str = "Budget 2027") -> bytes:
    """An Outlook message whose invitation is only in winmail.dat."""
    data = tnef if tnef is not None else meeting_tnef(subject=subject)
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    text = f"""From: Frank Partner <frank@partner.example>
To: Bob <bob@acme.com>
Cc: Grace Partner <grace@partner.example>
Subject: {subject}
Date: Sat, 05 Dec 2026 10:00:00 +0000
Message-ID: <AM0PR01MB5555@partner.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_tnef_"

--_tnef_
Content-Type: text/plain; charset="us-ascii"

When: Wednesday, 16 December 2026 14:00-15:00 (UTC+01:00) Amsterdam, Berlin
Where: Room 4.12

--_tnef_
Content-Type: application/ms-tnef; name="winmail.dat"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="winmail.dat"

{encoded}
--_tnef_--
"""
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
