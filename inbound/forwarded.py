"""find_forwarded(raw): the message a user forwarded to their own dropbox, if any.

Only the top-level forwarded message counts, never one nested deeper:
  attachment  a message/rfc822 part directly under the top-level multipart
  gmail       "---------- Forwarded message ---------" then From/Date/Subject/To/Cc lines
  outlook     "-----Original Message-----" (or "____" rule) then From/Sent/To/Cc/Subject
  apple       "Begin forwarded message:" then From/Subject/Date/To/Cc lines

Returns the original header values (From, To, Cc, Date, Subject, Message-ID,
In-Reply-To, References where known), ready to be matched as if the original
had arrived itself.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime

from gateway.parsing import ORIGIN_HEADERS

MAX_BODY = 200_000  # bytes of text searched for an inline block

_MARKERS = [
    ("gmail", re.compile(r"^-{5,}\s*Forwarded message\s*-{5,}\s*$", re.I | re.M)),
    ("outlook", re.compile(r"^-{3,}\s*Original Message\s*-{3,}\s*$", re.I | re.M)),
    ("outlook", re.compile(r"^_{10,}\s*$\n(?=\s*\*?From:)", re.M)),
    ("apple", re.compile(r"^\s*Begin forwarded message:\s*$", re.I | re.M)),
]
_FIELD = re.compile(r"^\s*\*?(From|Sent|Date|To|Cc|Subject|Reply-To)\s*:\*?\s*(.*)$", re.I)
_TAG = re.compile(r"<[^>]+>")
_DATE_FORMATS = (
    "%a, %b %d, %Y %I:%M %p",  # Gmail: Mon, Nov 23, 2026 at 10:00 AM ("at" removed)
    "%A, %B %d, %Y %I:%M %p",  # Outlook: Monday, November 23, 2026 10:00 AM
    "%A, %B %d, %Y %I:%M:%S %p",
    "%d %B %Y %H:%M:%S %Z",  # Apple: 23 November 2026 at 10:00:00 GMT
    "%B %d, %Y %H:%M:%S %Z",
    "%d %B %Y %H:%M:%S",
    "%B %d, %Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%d %H:%M",
)


@dataclass(frozen=True)
class ForwardedOrigin:
    style: str
    headers: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {"style": self.style, "headers": dict(self.headers)}


# Cheap look before the full MIME parse: every style leaves one of these (an
# encoded body can hide them, so base64 and quoted-printable parts count too).
_HINTS = (
    b"message/rfc822",
    b"forwarded message",
    b"original message",
    b"__________",
    b"sent:",
    b"base64",
    b"quoted-printable",
)


def might_be_forwarded(raw: bytes) -> bool:
    lowered = raw.lower()
    return any(hint in lowered for hint in _HINTS)


def find_forwarded(raw: bytes) -> ForwardedOrigin | None:
    if not might_be_forwarded(raw):
        return None
    try:
        message = message_from_bytes(raw, policy=policy.default)
    except Exception:
        return None
    attached = _attached_message(message)
    if attached is not None:
        return attached
    text = _first_text(message)
    return _inline(text) if text else None


def _attached_message(message: Message) -> ForwardedOrigin | None:
    if not message.is_multipart():
        return None
    for part in message.get_payload():  # top level only
        if isinstance(part, Message) and part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message):
                headers = {
                    name: _clean(str(original.get(name, "")))
                    for name in ORIGIN_HEADERS
                    if original.get(name) is not None
                }
                if headers.get("from"):
                    return ForwardedOrigin("attachment", headers)
    return None


def _first_text(message: Message) -> str:
    """The first text/plain part (or text/html, tags stripped), outside attachments."""
    html_text = ""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            break  # never look inside an attached message here
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        try:
            content = part.get_content() if isinstance(part, EmailMessage) else ""
        except Exception:
            payload = part.get_payload(decode=True)
            content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if not isinstance(content, str):
            continue
        if part.get_content_type() == "text/plain":
            return content[:MAX_BODY]
        if part.get_content_type() == "text/html" and not html_text:
            stripped = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content[:MAX_BODY])
            html_text = html.unescape(_TAG.sub("", stripped))
    return html_text


def _inline(text: str) -> ForwardedOrigin | None:
    text = text.replace("\r\n", "\n")
    found = [(m.start(), m.end(), style) for style, rx in _MARKERS for m in rx.finditer(text)]
    if not found:
        return None
    _start, end, style = min(found)  # the first block is the top-level forward
    headers: dict[str, str] = {}
    started = False
    for line in text[end:].split("\n"):
        line = line.removeprefix(">").strip()
        if not line:
            if started:
                break
            continue
        match = _FIELD.match(line)
        if match is None:
            if started:
                break
            continue
        started = True
        name = match.group(1).lower()
        name = "date" if name == "sent" else name
        headers.setdefault(name, _clean(match.group(2)))
    if not headers.get("from"):
        return None
    if "date" in headers:
        when = parse_loose_date(headers["date"])
        if when is None:
            del headers["date"]
        else:
            headers["date"] = format_datetime(when)
    return ForwardedOrigin(style, headers)


def parse_loose_date(text: str) -> datetime | None:
    """Dates as mail clients print them in forwarded blocks."""
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None:
        # Narrow no-break spaces (Gmail) and undecodable bytes stand for spaces.
        cleaned = re.sub(r"[\u202f\u00a0\ufffd]+", " ", text)
        cleaned = re.sub(r"\s+at\s+", " ", cleaned).strip()
        cleaned = re.sub(r"\s+", " ", cleaned)
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(cleaned, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _clean(value: str) -> str:
    """One line, no control characters: these become header values again."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", value).strip()[:2000]
