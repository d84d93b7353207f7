"""What a stored message holds for a reader: its text, and its attachments.

Parsed with email.policy.default from the byte-exact raw message. Each part is
guarded: an unknown charset or a broken multipart costs that part's text (decoded
with replacement characters), never the whole message. An attachment is any part
that is not the message's text: a part marked attachment, one with a file name, or
one that is neither text/plain nor text/html (an attached message counts as one,
and is not opened further). Attachments are numbered from 1 in the order they
appear, which is stable for the same bytes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import nh3

SNIPPET = 200
MAX_TEXT = 256 * 1024  # characters of text an answer carries
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Attachment:
    number: int
    filename: str
    content_type: str
    size: int
    content_id: str | None
    inline: bool


@dataclass
class Contents:
    text: str = ""  # text/plain, or the text of text/html when there is no plain part
    html: str | None = None  # as sent: never show it unsanitized
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def snippet(self) -> str:
        flat = _SPACE.sub(" ", self.text).strip()
        return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1].rstrip() + "…"


def contents(raw: bytes) -> Contents:
    found = Contents()
    plain: str | None = None
    for number, part, is_attachment in _parts(raw):
        if is_attachment:
            found.attachments.append(_describe(number, part))
        elif part.get_content_type() == "text/plain" and plain is None:
            plain = _text(part)
        elif part.get_content_type() == "text/html" and found.html is None:
            found.html = _text(part)
    if plain is not None:
        found.text = plain
    elif found.html is not None:
        found.text = _html_text(found.html)
    found.text = found.text[:MAX_TEXT]
    return found


def attachment(raw: bytes, number: int) -> tuple[Attachment, bytes] | None:
    """Attachment `number` of the message and its bytes, or None."""
    for n, part, is_attachment in _parts(raw):
        if is_attachment and n == number:
            return _describe(n, part), _bytes(part)
    return None


def _parts(raw: bytes) -> Iterator[tuple[int, Message, bool]]:
    """(attachment number or 0, part, whether it is an attachment), leaves only."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    number = 0
    stack: list[Message] = [message]
    while stack:
        part = stack.pop(0)
        kind = part.get_content_type()
        if part.is_multipart() and kind.startswith("multipart/"):
            children = part.get_payload()
            if isinstance(children, list):
                stack[0:0] = [c for c in children if isinstance(c, Message)]
            continue
        if _is_attachment(part, kind, part is message):
            number += 1
            yield number, part, True
        else:
            yield 0, part, False


def _is_attachment(part: Message, kind: str, top: bool) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    if kind in ("text/plain", "text/html"):
        return False
    return not (top and kind.startswith("text/"))


def _describe(number: int, part: Message) -> Attachment:
    kind = part.get_content_type()
    name = _safe_name(part.get_filename() or "") or f"attachment-{number}{_extension(kind)}"
    content_id = part.get("content-id")
    return Attachment(
        number=number,
        filename=name,
        content_type=kind,
        size=len(_bytes(part)),
        content_id=str(content_id).strip("<> ") if content_id else None,
        inline=part.get_content_disposition() == "inline",
    )


def _bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes(policy=policy.SMTP)
        return part.as_bytes(policy=policy.SMTP)
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: the bytes as they came
        payload = None
    if isinstance(payload, bytes):
        return payload
    text = part.get_payload()
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else b""


def _text(part: Message) -> str:
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return content
        except (LookupError, ValueError, AssertionError, KeyError):
            pass  # an unknown charset or a broken part: decode it by hand below
    charset = part.get_content_charset() or "utf-8"
    data = _bytes(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _html_text(markup: str) -> str:
    """The words of an HTML body (nh3 drops every tag, and scripts and styles whole)."""
    bare = nh3.clean(markup, tags=set(), clean_content_tags={"script", "style", "title"})
    return _SPACE.sub(" ", html.unescape(bare)).strip()


def _safe_name(name: str) -> str:
    """A file name with no path and no control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable() and c not in '"')
    return name.strip(" .")[:200]


def _extension(kind: str) -> str:
    return {"message/rfc822": ".eml", "text/calendar": ".ics"}.get(kind, "")
