"""The sync's bulk commands (UID SEARCH, FETCH of headers, sizes and bodies for
thousands of messages), read without imapclient's response parser.

imapclient's pure-Python lexer costs more CPU than the server spends on a header
scan; for these commands the gateway sends them through imaplib and picks
UID, RFC822.SIZE, X-GM-MSGID and the literal out of each response with
regular expressions. The answer has imapclient's shape ({uid: {b"RFC822.SIZE":
n, b"BODY[HEADER]": bytes, ...}}), so callers do not care which path ran.
UIDs go out as ranges ("1:500,502"), never as a list that outgrows the
server's command line.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from imapclient.exceptions import IMAPClientError, InvalidCriteriaError

HEADER_KEY = b"BODY[HEADER]"
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_GM = re.compile(rb"\bX-GM-MSGID (\d+)")
_NUMBERS = ((b"UID", _UID), (b"RFC822.SIZE", _SIZE), (b"X-GM-MSGID", _GM))
_LITERAL = re.compile(rb"\{(\d+)\}\r?\n\Z")
_EMPTY_HEADER = re.compile(rb'BODY\[HEADER[^\]]*\] (""|NIL)')


def uid_ranges(uids: Iterable[int]) -> str:
    """1,2,3,5,7,8 -> "1:3,5,7:8"."""
    out: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def search_uids(client: Any, *criteria: str | date) -> list[int]:
    """UID SEARCH, its answer read as numbers (imapclient's parser costs 0.3 s for the
    20,000 UIDs of a big folder). Dates go out in IMAP's own form, 5-Jan-2026."""
    words = [_imap_date(c) if isinstance(c, date) else c for c in criteria]
    try:
        typ, data = client._imap.uid("SEARCH", *words)
    except imaplib.IMAP4.abort:
        raise  # the connection is gone: not a question of criteria
    except imaplib.IMAP4.error as exc:  # NO or BAD
        raise InvalidCriteriaError(f"SEARCH {' '.join(words)} failed: {exc}") from exc
    if typ != "OK":
        raise InvalidCriteriaError(f"SEARCH {' '.join(words)} failed: {data!r}")
    return [int(n) for part in data if part for n in part.split()]


def fetch_bodies(client: Any, uids: Sequence[int]) -> dict[int, bytes]:
    """UID FETCH BODY.PEEK[] of `uids` (never sets \\Seen): {uid: the message's bytes}."""
    found = fetch_headers(client, uids, ["BODY.PEEK[]"])
    return {uid: item[HEADER_KEY] for uid, item in found.items() if HEADER_KEY in item}


def _imap_date(day: date) -> str:
    return f"{day.day}-{MONTHS[day.month - 1]}-{day.year}"


def fetch_headers(
    client: Any, uids: Sequence[int], items: Sequence[str]
) -> dict[int, dict[bytes, Any]]:
    """UID FETCH `items` (one of them a section with a literal: BODY.PEEK[HEADER...] or
    BODY.PEEK[]) for `uids`; the literal is under HEADER_KEY."""
    if not uids:
        return {}
    wanted = set(uids)
    out: dict[int, dict[bytes, Any]] = {}
    asked = " ".join(items)
    patterns = [
        (key, pattern) for key, pattern in _NUMBERS if key == b"UID" or key.decode() in asked
    ]
    for text, literal in _fetch_responses(client._imap, uid_ranges(uids), asked):
        item = _attributes(text, patterns)
        if literal is not None:
            item[HEADER_KEY] = literal
        elif _EMPTY_HEADER.search(text):
            item[HEADER_KEY] = b""
        _store(out, item, wanted)
    return out


def _fetch_responses(
    imap: imaplib.IMAP4, uid_set: str, items: str
) -> Iterator[tuple[bytes, bytes | None]]:
    """Send UID FETCH through imaplib and read its answer here, one response at a time:
    (the response's text with its literal cut out, the first literal or None).

    imaplib's own reader runs several regular expressions and list operations per
    line, which for a 20,000-message header scan cost more than the server's work.
    Reads stay bounded as imaplib's are: lines by its _MAXLINE, literals by the
    connection's limit (SafeIMAPClient's read)."""
    tag = imap._command("UID", "FETCH", uid_set, f"({items})")
    imap.tagged_commands.pop(tag, None)  # answered here, not through imaplib
    mine = tag if isinstance(tag, bytes) else tag.encode("ascii")
    while True:
        line = _line(imap)
        if line.startswith(mine + b" "):
            status, _, text = line[len(mine) + 1 :].partition(b" ")
            if status != b"OK":
                raise IMAPClientError(
                    f"FETCH failed: {status.decode()} {text.decode(errors='replace')}"
                )
            return
        if line.startswith(b"* BYE"):
            raise imaplib.IMAP4.abort(f"server said {line.decode(errors='replace')}")
        literal: bytes | None = None
        text = line
        while (size := _LITERAL.search(line)) is not None:  # a literal follows the line
            data = imap.read(int(size.group(1)))
            if literal is None:
                literal = data
            line = _line(imap)
            text = text[: size.start()] + b" " + line
        if text.startswith(b"* ") and b" FETCH " in text[:40]:
            yield text, literal


def _line(imap: imaplib.IMAP4) -> bytes:
    line: bytes = imap.readline()  # at most imaplib's _MAXLINE
    if not line:
        raise imaplib.IMAP4.abort("socket error: EOF")
    return line


def _attributes(
    text: bytes, patterns: Sequence[tuple[bytes, re.Pattern[bytes]]]
) -> dict[bytes, Any]:
    found: dict[bytes, Any] = {}
    for key, pattern in patterns:
        match = pattern.search(text)
        if match:
            found[key] = int(match.group(1))
    return found


def _store(out: dict[int, dict[bytes, Any]], item: dict[bytes, Any], wanted: set[int]) -> None:
    uid = item.get(b"UID")
    if isinstance(uid, int) and uid in wanted:
        out.setdefault(uid, {}).update(item)
