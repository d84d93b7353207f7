"""Meeting invitations in the shapes the clients that send most of them produce:
Google Calendar (a text/calendar alternative and its invite.ics twin), Outlook /
Exchange (Windows time-zone names, a REPLY without ORGANIZER), Apple iCloud (no
SEQUENCE), Zoom (a PUBLISH file with a doubled ";;" in its Content-Type), a CANCEL,
a recurring series with one moved occurrence, and a broken .ics."""

from __future__ import annotations

import base64


def _crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def google_event(sequence: int = 0, summary: str = "Contract review") -> bytes:
    return _crlf(f"""
BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:REQUEST
BEGIN:VEVENT
DTSTART:20261210T150000Z
DTEND:20261210T160000Z
DTSTAMP:20261205T120000Z
ORGANIZER;CN=Carol Client:mailto:carol@client.com
UID:7kukuqrfedlm2f9t0vr8u4bp5k@google.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=TRUE
 ;CN=Carol Client;X-NUM-GUESTS=0:mailto:carol@client.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=
 TRUE;CN=bob@acme.com;X-NUM-GUESTS=0:mailto:bob@acme.com
ATTENDEE;CUTYPE=RESOURCE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=HQ-3-Ro
 om Atlas (8);X-NUM-GUESTS=0:mailto:c_1888abc@resource.calendar.google.com
X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij
CREATED:20261205T115900Z
DESCRIPTION:Join with Google Meet: https://meet.google.com/abc-defg-hij
LAST-MODIFIED:20261205T120000Z
LOCATION:
SEQUENCE:{sequence}
STATUS:CONFIRMED
SUMMARY:{summary}
TRANSP:OPAQUE
END:VEVENT
END:VCALENDAR
""")


def google(sequence: int = 0, summary: str = "Contract review") -> bytes:
    ics = google_event(sequence, summary)
    return _crlf(f"""
From: Carol Client <carol@client.com>
To: bob@acme.com
Subject: Invitation: {summary} @ Thu Dec 10, 2026 3pm - 4pm (GMT)
Date: Sat, 05 Dec 2026 12:00:00 +0000
Message-ID: <0000000000001@google.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset="UTF-8"; format=flowed; delsp=yes

You have been invited to the following event.

--alt
Content-Type: text/calendar; charset="UTF-8"; method=REQUEST
Content-Transfer-Encoding: base64

{_b64(ics)}
--alt--

--mixed
Content-Type: application/ics; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"
Content-Transfer-Encoding: base64

{_b64(ics)}
--mixed--
""")


OUTLOOK_TZ = """
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
"""


def outlook_request() -> bytes:
    ics = _crlf(f"""
BEGIN:VCALENDAR
METHOD:REQUEST
PRODID:Microsoft Exchange Server 2010
VERSION:2.0
{OUTLOOK_TZ.strip()}
BEGIN:VEVENT
ORGANIZER;CN=Dan Partner:mailto:dan@partner.example
ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Bob:mailto:bob@acme.com
ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Erin:mailto:erin@partner.example
DESCRIPTION;LANGUAGE=en-US:Quarterly review\\n________________________________________
 \\nMicrosoft Teams meeting\\nJoin: https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc
UID:040000008200E00074C5B7101A82E00800000000B0A5F8C1E6CBDA01000000000000000010000000
SUMMARY;LANGUAGE=en-US:Quarterly review
DTSTART;TZID=W. Europe Standard Time:20261214T100000
DTEND;TZID=W. Europe Standard Time:20261214T113000
CLASS:PUBLIC
PRIORITY:5
DTSTAMP:20261205T090000Z
TRANSP:OPAQUE
STATUS:CONFIRMED
SEQUENCE:0
LOCATION;LANGUAGE=en-US:Microsoft Teams Meeting
X-MICROSOFT-CDO-APPT-SEQUENCE:0
END:VEVENT
END:VCALENDAR
""")
    return _crlf(f"""
From: Dan Partner <dan@partner.example>
To: Bob <bob@acme.com>, Erin <erin@partner.example>
Subject: Quarterly review
Date: Sat, 05 Dec 2026 09:00:00 +0000
Message-ID: <DB9PR01MB1234@partner.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="_000_"

--_000_
Content-Type: text/plain; charset="us-ascii"

Quarterly review

--_000_
Content-Type: text/calendar; charset="utf-8"; method=REQUEST
Content-Transfer-Encoding: base64

{_b64(ics)}
--_000_--
""")


def outlook_reply(partstat: str = "ACCEPTED") -> bytes:
    """Outlook's answer: METHOD:REPLY, the attendee alone, and no ORGANIZER."""
    ics = _crlf(f"""
BEGIN:VCALENDAR
METHOD:REPLY
PRODID:Microsoft Exchange Server 2010
VERSION:2.0
BEGIN:VEVENT
ATTENDEE;PARTSTAT={partstat};CN=Erin:mailto:erin@partner.example
UID:040000008200E00074C5B7101A82E00800000000B0A5F8C1E6CBDA01000000000000000010000000
SUMMARY;LANGUAGE=en-US:Accepted: Quarterly review
DTSTART:20261214T090000Z
DTEND:20261214T103000Z
DTSTAMP:20261205T100000Z
SEQUENCE:0
END:VEVENT
END:VCALENDAR
""")
    return _crlf(f"""
From: Erin <erin@partner.example>
To: Dan Partner <dan@partner.example>
Subject: Accepted: Quarterly review
Date: Sat, 05 Dec 2026 10:00:00 +0000
Message-ID: <reply-erin@partner.example>
MIME-Version: 1.0
Content-Type: text/calendar; charset="utf-8"; method=REPLY
Content-Transfer-Encoding: base64

{_b64(ics)}
""")


def icloud() -> bytes:
    """Apple's: no SEQUENCE, a floating-free TZID of its own, an .ics attachment."""
    ics = _crlf("""
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//iPhone 17.1//EN
METHOD:REQUEST
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:STANDARD
DTSTART:20071104T020000
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:5F1A6C2E-7B1B-4C3D-9E8F-0A1B2C3D4E5F
DTSTAMP:20261205T140000Z
DTSTART;TZID=America/New_York:20261211T090000
DTEND;TZID=America/New_York:20261211T093000
SUMMARY:Coffee
ORGANIZER;CN="Frank":mailto:frank@icloud.com
ATTENDEE;CN="Bob";PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@acme.com
END:VEVENT
END:VCALENDAR
""")
    return _crlf(f"""
From: Frank <frank@icloud.com>
To: bob@acme.com
Subject: Invitation: Coffee
Date: Sat, 05 Dec 2026 14:00:00 +0000
Message-ID: <apple-1@icloud.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="Apple-Mail"

--Apple-Mail
Content-Type: text/plain; charset=utf-8

Coffee?
--Apple-Mail
Content-Type: text/calendar; name="iCal-20261205-140000.ics"; method=REQUEST
Content-Disposition: attachment; filename="iCal-20261205-140000.ics"
Content-Transfer-Encoding: base64

{_b64(ics)}
--Apple-Mail--
""")


def zoom_publish() -> bytes:
    """Zoom's "add to calendar": METHOD:PUBLISH, and ";;" in the Content-Type."""
    ics = _crlf("""
BEGIN:VCALENDAR
PRODID:-//zoom.us//iCalendar Event//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:PUBLISH
BEGIN:VEVENT
DTSTART:20261215T170000Z
DTEND:20261215T180000Z
SUMMARY:Webinar: What's new
UID:20261205T150000Z-87654321@fe80:0:0:0:0:0:0:1
LOCATION:https://us02web.zoom.us/j/87654321
DTSTAMP:20261205T150000Z
END:VEVENT
END:VCALENDAR
""")
    return _crlf(f"""
From: Zoom <no-reply@zoom.us>
To: bob@acme.com
Subject: Webinar registration approved
Date: Sat, 05 Dec 2026 15:00:00 +0000
Message-ID: <zoom-1@zoom.us>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="z"

--z
Content-Type: text/plain; charset=utf-8

See you there.
--z
Content-Type: text/calendar; charset=utf-8;; method=PUBLISH; name=iCal.ics
Content-Disposition: attachment; filename=iCal.ics
Content-Transfer-Encoding: base64

{_b64(ics)}
--z--
""")


def cancel(sequence: int = 1) -> bytes:
    ics = (
        google_event(sequence)
        .replace(b"METHOD:REQUEST", b"METHOD:CANCEL")
        .replace(b"STATUS:CONFIRMED", b"STATUS:CANCELLED")
    )
    return _crlf(f"""
From: Carol Client <carol@client.com>
To: bob@acme.com
Subject: Canceled event: Contract review
Date: Sat, 05 Dec 2026 13:00:00 +0000
Message-ID: <0000000000002@google.com>
MIME-Version: 1.0
Content-Type: text/calendar; charset="UTF-8"; method=CANCEL
Content-Transfer-Encoding: base64

{_b64(ics)}
""")


def recurring_with_a_moved_occurrence() -> bytes:
    ics = _crlf(f"""
BEGIN:VCALENDAR
METHOD:REQUEST
PRODID:Microsoft Exchange Server 2010
VERSION:2.0
{OUTLOOK_TZ.strip()}
BEGIN:VEVENT
ORGANIZER;CN=Dan:mailto:dan@partner.example
ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@acme.com
UID:weekly-sync-1
SUMMARY:Weekly sync
DTSTART;TZID=W. Europe Standard Time:20261207T090000
DTEND;TZID=W. Europe Standard Time:20261207T093000
RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO
DTSTAMP:20261205T080000Z
SEQUENCE:0
END:VEVENT
BEGIN:VEVENT
ORGANIZER;CN=Dan:mailto:dan@partner.example
ATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@acme.com
UID:weekly-sync-1
RECURRENCE-ID;TZID=W. Europe Standard Time:20261214T090000
SUMMARY:Weekly sync (moved)
DTSTART;TZID=W. Europe Standard Time:20261215T140000
DTEND;TZID=W. Europe Standard Time:20261215T143000
DTSTAMP:20261205T080000Z
SEQUENCE:1
END:VEVENT
END:VCALENDAR
""")
    return _crlf(f"""
From: Dan <dan@partner.example>
To: bob@acme.com
Subject: Weekly sync
Date: Sat, 05 Dec 2026 08:00:00 +0000
Message-ID: <weekly@partner.example>
MIME-Version: 1.0
Content-Type: text/calendar; charset="utf-8"; method=REQUEST
Content-Transfer-Encoding: base64

{_b64(ics)}
""")


def broken() -> bytes:
    return _crlf("""
From: Carol Client <carol@client.com>
To: bob@acme.com
Subject: Our call
Date: Sat, 05 Dec 2026 16:00:00 +0000
Message-ID: <broken@client.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

See the invite attached.
--b
Content-Type: text/calendar; method=REQUEST; name=call.ics
Content-Disposition: attachment; filename=call.ics

BEGIN:VCALENDAR
BEGIN:VEVENT
UID:broken-1
DTSTART:2026-12-10 not a time
SUMMARY:Our call
--b--
""")
