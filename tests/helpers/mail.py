"""Builders for test messages (CRLF line endings, as on the wire)."""

from __future__ import annotations

import itertools

_counter = itertools.count(1)


def make_message(
    *,
    from_: str | list[str] = "Carol <carol@client.com>",
    to: str = "Bob <bob@acme.com>",
    cc: str | None = None,
    bcc: str | None = None,
    subject: str = "Hello",
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    references: str | None = None,
    date: str = "Mon, 23 Nov 2026 10:00:00 +0000",
    extra: list[str] | None = None,
    body: str = "Hello there.\r\n",
) -> bytes:
    lines: list[str] = []
    for author in [from_] if isinstance(from_, str) else from_:
        lines.append(f"From: {author}")
    lines.append(f"To: {to}")
    if cc is not None:
        lines.append(f"Cc: {cc}")
    if bcc is not None:
        lines.append(f"Bcc: {bcc}")
    lines.append(f"Subject: {subject}")
    lines.append(f"Date: {date}")
    if message_id == "auto":
        message_id = f"<m{next(_counter)}@test.example>"
    if message_id is not None:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to is not None:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references is not None:
        lines.append(f"References: {references}")
    lines += extra or []
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")
