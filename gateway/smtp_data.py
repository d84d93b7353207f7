"""The DATA of an SMTP transaction, read in large pieces.

aiosmtpd reads DATA one line at a time, a round of the event loop per line (a
10 KB message is about 140 of them); `read_data` asks the stream for the next
".<CR><LF>" instead and looks whether it starts a line. What it accepts, how it
ends and what it refuses are aiosmtpd's (a test holds the two equal):

- the data ends only at a line that is exactly "." after a CRLF: a bare LF or
  CR never ends it (no SMTP smuggling);
- a line longer than the line limit (CRLF included) is "500 line too long",
  more data than the size limit "552 too much", each said after the end;
- dot-stuffing is undone: a line's leading "." is removed.
"""

from __future__ import annotations

import asyncio

OK = 0
TOO_LONG = 500
TOO_MUCH = 552
_PIECE = 256 * 1024  # the most read at once while looking for the end


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> tuple[bytes, int]:
    """(the message with dot-stuffing undone, OK) or (b"", TOO_LONG or TOO_MUCH)."""
    pieces: list[bytes] = []
    size = 0
    tail = b"\r\n"  # the two bytes before what comes next: DATA starts a line
    problem = OK
    # Looking for the end beyond the stream's line limit is the point; the
    # limit goes back to the line limit for the commands that follow.
    limit = reader._limit  # type: ignore[attr-defined]
    reader._limit = _PIECE  # type: ignore[attr-defined]
    try:
        while True:
            try:
                piece = await reader.readuntil(b".\r\n")
                last = (tail + piece[:-3])[-2:] == b"\r\n"  # a line that is just "."
            except asyncio.LimitOverrunError as exc:
                piece = await reader.read(exc.consumed)
                last = False
            data = piece[:-3] if last else piece
            if problem == OK:
                pieces.append(data)
                size += len(data)
                if size_limit and size > size_limit:
                    problem = first_problem(b"".join(pieces), size_limit, line_limit)
                    pieces = []  # keep reading to the end, keep nothing
            tail = (tail + piece)[-2:]
            if last:
                break
    finally:
        reader._limit = limit  # type: ignore[attr-defined]
    if problem != OK:
        return b"", problem
    raw = b"".join(pieces)
    if any(len(line) + 2 > line_limit for line in raw.split(b"\r\n")):
        return b"", TOO_LONG
    if raw.startswith(b"."):
        raw = raw[1:]
    return raw.replace(b"\r\n.", b"\r\n"), OK


def first_problem(data: bytes, size_limit: int, line_limit: int) -> int:
    """Which limit `data`, more than `size_limit` bytes, broke first, in aiosmtpd's
    order: a line too long for the stream, then the size, then the line with its CRLF."""
    size = 0
    start = 0
    while start < len(data):
        end = data.find(b"\r\n", start)
        stop = len(data) if end < 0 else end + 2
        if (stop if end < 0 else end) - start > line_limit:
            return TOO_LONG
        size += stop - start
        if size > size_limit:
            return TOO_MUCH
        if stop - start > line_limit:
            return TOO_LONG
        start = stop
    return TOO_MUCH
