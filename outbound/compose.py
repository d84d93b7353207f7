"""A message built from the REST API's JSON fields (from, to, cc, bcc, subject, text,
html, attachments, in_reply_to, references).

Every value that becomes a header is checked here first (no CR, LF or NUL, no
control characters): Python's email generator had header-injection bugs in the
3.11 line, so it only ever gets values that cannot inject. The bytes it writes then
go through outbound.hygiene like any message sent over SMTP.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header
from email.message import EmailMessage
from email.utils import formataddr

from gateway.addresses import parse_one
from gateway.errors import InputError

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_ENCODED = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_MSGID = re.compile(r"<?([^<>\s\x00-\x1f\x7f]+@[^<>\s\x00-\x1f\x7f]+)>?")


class FieldError(InputError):
    """A field that cannot be sent, named as the API caller wrote it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.name = name


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content_base64: str


@dataclass(frozen=True)
class Fields:
    sender: str
    to: Sequence[str] = ()
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    attachments: Sequence[Attachment] = field(default_factory=tuple)

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients: each address of to, cc and bcc, without names."""
        found: list[str] = []
        for value in [*self.to, *self.cc, *self.bcc]:
            parsed = parse_one(value)
            spec = parsed.addr_spec if parsed is not None else value
            if spec not in found:
                found.append(spec)
        return found


def compose(fields: Fields) -> bytes:
    """The message as bytes (CRLF), or FieldError naming the field at fault. Non-ASCII
    text in headers becomes RFC 2047 encoded words; only non-ASCII addresses make a
    message that needs SMTPUTF8 (see `needs_smtputf8`)."""
    chosen = policy.SMTPUTF8 if needs_smtputf8(fields) else policy.SMTP
    message = EmailMessage(policy=chosen)
    message["From"] = _address("from", fields.sender)
    for name, values in (("to", fields.to), ("cc", fields.cc), ("bcc", fields.bcc)):
        if values:
            message[name.capitalize()] = ", ".join(
                _address(f"{name}[{i}]", v) for i, v in enumerate(values)
            )
    if not fields.recipients:
        raise FieldError("to", "at least one recipient (to, cc or bcc) is needed")
    message["Subject"] = _text("subject", fields.subject)
    if fields.in_reply_to:
        message["In-Reply-To"] = _message_id("in_reply_to", fields.in_reply_to)
    if fields.references:
        message["References"] = " ".join(
            _message_id(f"references[{i}]", r) for i, r in enumerate(fields.references)
        )
    if fields.text is None and fields.html is None:
        raise FieldError("text", "a text or an html body is needed")
    if fields.text is not None:
        message.set_content(fields.text)
    if fields.html is not None:
        if fields.text is None:
            message.set_content(fields.html, subtype="html")
        else:
            message.add_alternative(fields.html, subtype="html")
    for i, attachment in enumerate(fields.attachments):
        where = f"attachments[{i}]"
        try:
            data = base64.b64decode(attachment.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FieldError(f"{where}.content", "is not base64") from exc
        maintype, _, subtype = attachment.content_type.partition("/")
        if not re.fullmatch(r"[a-z0-9.+-]+", maintype) or not re.fullmatch(
            r"[a-z0-9.+-]+", subtype
        ):
            raise FieldError(f"{where}.content_type", "is not a MIME type like text/plain")
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype,
            filename=_text(f"{where}.filename", attachment.filename),
        )
    return message.as_bytes(policy=chosen.clone(linesep="\r\n"))


def needs_smtputf8(fields: Fields) -> bool:
    return not all(a.isascii() for a in [fields.sender, *fields.recipients])


def _text(name: str, value: str) -> str:
    if _UNSAFE.search(value):
        raise FieldError(name, "must not contain CR, LF, NUL or other control characters")
    for word in _ENCODED.findall(value):
        # An encoded word that decodes to a line break: Python's generator has been
        # seen to write it back decoded, as a header line of its own.
        try:
            parts = decode_header(word)
        except (ValueError, LookupError):
            continue
        decoded = "".join(
            p.decode(charset or "ascii", "replace") if isinstance(p, bytes) else p
            for p, charset in parts
        )
        if _UNSAFE.search(decoded):
            raise FieldError(name, "holds an encoded word that decodes to a control character")
    if len(value) > 900:
        raise FieldError(name, "is too long (900 characters at most)")
    return value


def _address(name: str, value: str) -> str:
    _text(name, value)
    parsed = parse_one(value)
    if parsed is None:
        raise FieldError(name, f"{value!r} is not an email address")
    return (
        formataddr((parsed.display_name, parsed.addr_spec))
        if parsed.display_name
        else parsed.addr_spec
    )


def _message_id(name: str, value: str) -> str:
    _text(name, value)
    found = _MSGID.fullmatch(value.strip())
    if found is None:
        raise FieldError(name, "is not a Message-ID (<id@domain>)")
    return f"<{found.group(1)}>"
