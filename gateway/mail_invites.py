"""The meeting invitations a message carries, wherever in it they are.

`invites_in(raw)` walks the message (attached messages too) and reads every
calendar it finds: text/calendar parts (in multipart/alternative or not), .ics and
.vcs attachments (gateway.calendar_invites), and Outlook's winmail.dat
(gateway.tnef_invites). The same event seen twice or three times (Google's
text/calendar part and its invite.ics twin, a calendar part and a TNEF copy) is one
Invite: the highest (SEQUENCE, DTSTAMP).

A part that cannot be read is skipped and named in `Found.problems`: it never stops
the mail that carries it. `may_carry(raw)` is the cheap test the pipeline asks
first, so mail without a calendar is not parsed twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from gateway.calendar_invites import CALENDAR_TYPES, Invite, parse
from gateway.tnef_invites import is_tnef, tnef_invites

log = logging.getLogger(__name__)
_MAY_CARRY = re.compile(
    rb"text/calendar|application/ics|text/x-vcalendar|\.ics\b|\.vcs\b|ms-tnef|winmail\.dat",
    re.IGNORECASE,
)


@dataclass
class Found:
    invites: list[Invite] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # parts that could not be read


def may_carry(raw: bytes) -> bool:
    """Whether the message may hold a calendar (a scan of the bytes, no parsing)."""
    return _MAY_CARRY.search(raw) is not None


def invites_in(raw: bytes) -> Found:
    """Every event of every calendar in the message, one per (UID, RECURRENCE-ID)."""
    found = Found()
    best: dict[tuple[str, str], Invite] = {}
    message = BytesParser(policy=policy.default).parsebytes(raw)
    for part in message.walk():
        if part.is_multipart():
            continue
        tnef = is_tnef(part)
        if not tnef and not _is_calendar(part):
            continue
        name = part.get_filename() or part.get_content_type()
        try:
            data = _payload(part)
            if tnef:
                assert isinstance(message, EmailMessage)
                invites = tnef_invites(data, message, name)
            else:
                invites = parse(data, _method_of(part), name)
        except Exception as exc:  # anything a broken part does: skip it, keep the mail
            log.info("calendar part %s not read: %s", name, exc)
            found.problems.append(f"{name}: {exc}"[:300])
            continue
        for invite in invites:
            known = best.get(invite.key)
            if known is None or invite.version > known.version:
                best[invite.key] = invite
    found.invites = list(best.values())
    return found


def _is_calendar(part: Any) -> bool:
    kind = part.get_content_type()
    name = (part.get_filename() or "").lower()
    return kind in CALENDAR_TYPES or name.endswith((".ics", ".vcs"))


def _payload(part: Any) -> bytes:
    assert isinstance(part, EmailMessage)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _method_of(part: Any) -> str:
    """The part's method= parameter, read by hand: Zoom writes
    `text/calendar; charset=utf-8;; method=PUBLISH`, which the email package's parser
    does not always give back as a parameter."""
    method = part.get_param("method")
    if isinstance(method, str) and method:
        return method.strip().upper()
    header = str(part.get("Content-Type", ""))
    found = re.search(r"method\s*=\s*\"?([A-Za-z]+)", header)
    return found.group(1).upper() if found else ""
