"""parse(raw) -> ParsedMessage: the header facts the pipeline needs; never raises.

Only the header section is parsed (the body is not needed to match or
thread). Address headers go through `gateway.addresses`; Message-IDs are
taken as the `<...>` tokens of their headers. Serious defects become
`flags`; the raw bytes are never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from email import errors, policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from gateway.addresses import Address, fix_surrogates, parse_address_list, simple_address_keys

MAX_MESSAGE_ID = 998
ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc", "bcc")
# Flags that make a message "malformed": kept only where a contact is involved
# unless it was pushed on purpose, and always shown with the message.
MALFORMED_FLAGS = frozenset(
    {"no_headers", "missing_header_separator", "multiple_from", "no_from", "invalid_header"}
)
_MSGID = re.compile(r"<([^<>\s\x00-\x1f\x7f]{1,998})>")
_BARE_MSGID = re.compile(r"^[^<>\s\x00-\x1f\x7f]+@[^<>\s\x00-\x1f\x7f]+$")
_WS = re.compile(r"\s+")
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|tr|rif|r|antw|odp|enc|res)\s*(\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)
_PARSER = BytesParser(policy=policy.compat32)
_BLANK_LINE = re.compile(rb"\n\r?\n")


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    date: datetime | None
    addresses: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    @property
    def from_(self) -> tuple[Address, ...]:
        return self.addresses.get("from", ())

    @property
    def malformed(self) -> bool:
        return any(flag in MALFORMED_FLAGS for flag in self.flags)

    @property
    def subject_key(self) -> str:
        return thread_subject(self.subject)

    def identity(self) -> str:
        """Identity within an account: Message-ID confirmed by author, date and subject.

        A message that reuses another's Message-ID with a different author, date
        or subject gets a different identity, so it can never hide the first.
        """
        parts = [
            self.message_id or "",
            ",".join(sorted({a.normalized for a in self.from_})),
            self.date.isoformat() if self.date else "",
            self.subject,
        ]
        if self.message_id is None:
            # No Message-ID: the recipients join the stable headers.
            for name in ("to", "cc"):
                parts.append(",".join(sorted({a.normalized for a in self.addresses.get(name, ())})))
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def thread_subject(subject: str) -> str:
    """Subject without reply/forward prefixes, case-folded: the last-resort thread key."""
    return _WS.sub(" ", _REPLY_PREFIX.sub("", subject)).strip().casefold()[:200]


def parse(raw: bytes, local_part_case: str = "lower") -> ParsedMessage:
    # Only the header section is read: the body can be megabytes.
    blank = _BLANK_LINE.search(raw)
    head = raw[: blank.start() + 1] + b"\n" if blank else raw
    fast = split_headers(head)
    if fast is not None:
        items, defects = fast, []
    else:
        try:
            msg = _PARSER.parsebytes(head, headersonly=True)
            items = list(msg.raw_items())
            defects = msg.defects
        except Exception:  # the compat32 feed parser is lenient; this is belt and braces
            return ParsedMessage(None, (), (), "", None, {}, ("no_headers",))
    flags: list[str] = []
    headers: dict[str, list[str]] = {}
    for name, value in items:
        headers.setdefault(name.lower(), []).append(value)
    if not headers:
        flags.append("no_headers")
    if any(isinstance(d, errors.MissingHeaderBodySeparatorDefect) for d in defects):
        flags.append("missing_header_separator")
    if any(isinstance(d, errors.InvalidHeaderDefect) for d in defects):
        flags.append("invalid_header")

    addresses: dict[str, tuple[Address, ...]] = {}
    for name in ADDRESS_HEADERS:
        found: list[Address] = []
        for value in headers.get(name, ()):
            found.extend(parse_address_list(value, local_part_case))
        addresses[name] = tuple(found)
    if len(headers.get("from", ())) > 1:
        flags.append("multiple_from")
    elif headers and not addresses["from"]:
        flags.append("no_from")

    return ParsedMessage(
        message_id=_first_message_id(headers.get("message-id", ())),
        in_reply_to=tuple(_message_ids(headers.get("in-reply-to", ()))),
        references=tuple(_message_ids(headers.get("references", ()))),
        subject=_subject(headers.get("subject", ())),
        date=_date(headers.get("date", ())),
        addresses=addresses,
        flags=tuple(flags),
    )


@dataclass(frozen=True, slots=True)
class HeaderScan:
    """What an IMAP header scan needs of a message: every address its address headers
    name (normalized), its Message-ID and date; as parse() reads them."""

    addresses: frozenset[str]
    message_id: str | None
    date: datetime | None


_ADDRESS_HEADER_SET = frozenset(ADDRESS_HEADERS)


def scan_headers(raw: bytes, local_part_case: str = "lower") -> HeaderScan:
    """The scan's facts of `raw` (a header section): read directly for a well-formed
    ASCII section whose address headers have the common shapes, else through parse().
    A property test holds the two equal."""
    blank = _BLANK_LINE.search(raw)
    head = raw[: blank.start() + 1] + b"\n" if blank else raw
    items = split_headers(head) if head.isascii() else None
    if items is not None:
        addresses: set[str] = set()
        ids: list[str] = []
        dates: list[str] = []
        for name, value in items:
            key = name.lower()
            if key in _ADDRESS_HEADER_SET:
                found = simple_address_keys(value, local_part_case)
                if found is None:
                    break
                addresses.update(found)
            elif key == "message-id":
                ids.append(value)
            elif key == "date":
                dates.append(value)
        else:
            return HeaderScan(frozenset(addresses), _first_message_id(ids), _date(dates))
    parsed = parse(raw, local_part_case)
    addresses_of = parsed.addresses
    return HeaderScan(
        frozenset(a.normalized for name in ADDRESS_HEADERS for a in addresses_of.get(name, ())),
        parsed.message_id,
        parsed.date,
    )


_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]+:")
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def split_headers(head: bytes) -> list[tuple[str, str]] | None:
    """The (name, value) pairs of a well-formed header section, as the stdlib's compat32
    parser reads them (values keep their folds), or None when anything is unusual (a
    bare CR, a line that is neither a field nor a continuation, a "From " line): the
    stdlib parser then reads it and notes the defects. Several times faster; a
    property test holds the two equal."""
    if head.count(b"\r") != head.count(b"\r\n"):
        return None
    text = head.decode("ascii", "surrogateescape")
    items: list[tuple[str, str]] = []
    name: str | None = None
    value = ""
    for line in _LINE.findall(text):  # not str.splitlines: it also breaks at \x0c, \x1e, ...
        if line in ("\r\n", "\n"):
            break
        if line[:1] in (" ", "\t"):
            if name is None:
                return None
            value += line
            continue
        field = _FIELD.match(line)
        if field is None:
            return None
        if name is not None:
            items.append((name, value.rstrip("\r\n")))
        name, value = line[: field.end() - 1], line[field.end() :].lstrip(" \t")
    if name is not None:
        items.append((name, value.rstrip("\r\n")))
    return items


def _message_ids(values: list[str] | tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        for token in _MSGID.findall(fix_surrogates(value)):
            if token not in out:
                out.append(token)
    return out


def _first_message_id(values: list[str] | tuple[str, ...]) -> str | None:
    if not values:
        return None
    found = _message_ids(values[:1])
    if found:
        return found[0]
    bare = fix_surrogates(values[0]).strip()
    return bare if _BARE_MSGID.match(bare) and len(bare) <= MAX_MESSAGE_ID else None


def _subject(values: list[str] | tuple[str, ...]) -> str:
    if not values:
        return ""
    value = fix_surrogates(values[0])
    text = value
    if "=?" in value:  # encoded words: let the stdlib decode them
        with contextlib.suppress(Exception):
            text = str(policy.default.header_factory("subject", value))
    return _WS.sub(" ", text).strip()


def _date(values: list[str] | tuple[str, ...]) -> datetime | None:
    if not values:
        return None
    text = fix_surrogates(values[0]).strip()
    common = _COMMON_DATE.fullmatch(text)
    if common is not None:
        return _common_date(common)
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


# The form nearly every mail program writes, "Tue, 1 Dec 2026 09:05:00 +0100":
# read directly, as parsedate_to_datetime reads it (a property test holds the
# two equal); any other form goes to the stdlib.
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_COMMON_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([1-9][0-9]{3}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)


def _common_date(match: re.Match[str]) -> datetime | None:
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = int(off_h) * 3600 + int(off_m) * 60
    if sign == "-":
        offset = -offset
    try:
        # "+0000" is UTC; "-0000" (zone unknown) is read as UTC too
        zone = UTC if offset == 0 else timezone(timedelta(seconds=offset))
        parsed = datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


ORIGIN_HEADERS = ("from", "to", "cc", "date", "subject", "message-id", "in-reply-to", "references")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def parse_origin(origin: dict[str, Any], local_part_case: str = "lower") -> ParsedMessage:
    """The original of a forwarded message, from the header values found in the forward."""
    headers = origin.get("headers")
    lines = []
    if isinstance(headers, dict):
        for name in ORIGIN_HEADERS:
            value = headers.get(name)
            if isinstance(value, str) and value:
                lines.append(f"{name}: {_UNSAFE.sub(' ', value).strip()}")
    parsed = parse(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), local_part_case)
    return replace(parsed, flags=(*parsed.flags, "forwarded"))
