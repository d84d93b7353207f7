"""What the gateway checks and completes in every message the CRM sends, before it is
queued: our own code, not the Python version's email generator (which had header-
injection bugs in the 3.11 line).

- Line ends become CRLF (a bare LF or CR never leaves the gateway: that is how SMTP
  smuggling crosses hops).
- The header section must be header fields: every line a `name:` field or a
  folded continuation, no NUL, no line over 998 characters, at most one of the
  fields RFC 5322 3.6 allows once, and no encoded word that decodes to CR, LF or
  NUL (a header injection waiting for the next decoder).
- 8-bit header bytes need SMTPUTF8 (RFC 6532); 8-bit bodies are kept as they are.
- Message-ID and Date are added when missing; the Message-ID is minted here, under
  the sender's domain.
- Bcc stays in the stored copy; `transmitted()` is the copy without it.
"""

from __future__ import annotations

import re
import uuid
from email.header import decode_header
from email.utils import format_datetime

from gateway import smtp_replies as replies
from gateway.addresses import domain_of, parse_address_list
from gateway.errors import MessageRejected, Reply
from gateway.mail_queue import Outgoing
from gateway.models import utcnow
from gateway.parsing import parse

MAX_LINE = 998  # RFC 5322 2.1.1, without the CRLF
ONCE = (
    "date",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "message-id",
    "in-reply-to",
    "references",
    "subject",
)
_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_ENCODED = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_BCC = re.compile(rb"bcc[ \t]*:", re.IGNORECASE)


def prepare(raw: bytes, *, smtp_utf8: bool = False, local_part_case: str = "lower") -> Outgoing:
    """The message as it will be queued, or MessageRejected saying what is wrong."""
    raw = _LINE_END.sub(b"\r\n", raw)
    end = raw.find(b"\r\n\r\n")
    head, rest = (
        (raw[: end + 2], raw[end + 2 :])
        if end >= 0
        else (raw if raw.endswith(b"\r\n") else raw + b"\r\n", b"\r\n")
    )
    names = _check_head(head, smtp_utf8)
    from_values = [v for n, v in _fields(head) if n == "from"]
    if not from_values:
        raise MessageRejected(replies.NO_FROM)
    senders = tuple(
        a.normalized
        for a in parse_address_list(
            from_values[0].decode("utf-8", "surrogateescape"), local_part_case
        )
    )
    if not senders:
        raise MessageRejected(_bad("the From header holds no usable address"))
    added = b""
    message_id = parse(head + b"\r\n").message_id
    if "message-id" not in names or message_id is None:
        if "message-id" in names:
            raise MessageRejected(_bad("the Message-ID header is not <id@domain>"))
        message_id = f"{uuid.uuid4().hex}@{domain_of(senders[0])}"
        added += f"Message-ID: <{message_id}>\r\n".encode("ascii")
    if "date" not in names:
        added += f"Date: {format_datetime(utcnow())}\r\n".encode("ascii")
    return Outgoing(added + head + rest, message_id, senders)


def transmitted(raw: bytes) -> bytes:
    """The copy sent to recipients: the stored message without its Bcc fields."""
    end = raw.find(b"\r\n\r\n")
    head, rest = raw[: end + 2], raw[end + 2 :]
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = _BCC.match(line) is not None
        if not dropping:
            kept.append(line)
    return b"".join(kept) + rest


def _check_head(head: bytes, smtp_utf8: bool) -> set[str]:
    """The names of the fields of a well-formed header section; MessageRejected else."""
    if b"\x00" in head:
        raise MessageRejected(_bad("NUL in the header section"))
    if not smtp_utf8 and not head.isascii():
        raise MessageRejected(replies.NEEDS_SMTPUTF8_HEADERS)
    seen: dict[str, int] = {}
    for number, line in enumerate(head.split(b"\r\n")[:-1], start=1):
        if len(line) > MAX_LINE:
            raise MessageRejected(_bad(f"header line {number} is longer than {MAX_LINE}"))
        if line[:1] in (b" ", b"\t"):
            if number == 1:
                raise MessageRejected(_bad("the message starts with a folded line"))
            continue
        field = _FIELD.match(line)
        if field is None:
            raise MessageRejected(_bad(f"header line {number} is not a header field"))
        name = field.group(1).decode("ascii").lower()
        seen[name] = seen.get(name, 0) + 1
        if name in ONCE and seen[name] > 1:
            raise MessageRejected(_bad(f"more than one {name} header"))
    for name, value in _fields(head):
        for word in _ENCODED.findall(value):
            try:
                decoded = b"".join(
                    part if isinstance(part, bytes) else part.encode()
                    for part, _ in decode_header(word.decode("ascii", "replace"))
                )
            except (ValueError, LookupError):
                continue  # undecodable words are shown as they are: nothing hides in them
            if any(c in decoded for c in (b"\r", b"\n", b"\x00")):
                raise MessageRejected(_bad(f"an encoded word in {name} hides a line break"))
    return set(seen)


def _fields(head: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, unfolded value) of each field."""
    out: list[tuple[str, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b" " + line.strip())
            continue
        field = _FIELD.match(line)
        if field is not None:
            out.append((field.group(1).decode("ascii").lower(), line[field.end() :].strip()))
    return out


def _bad(reason: str) -> Reply:
    return replies.BAD_HEADER._replace(text=f"{replies.BAD_HEADER.text}: {reason}")
