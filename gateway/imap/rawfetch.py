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
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from imapclient.exceptions import IMAPClientError, InvalidCriteriaError

from gateway.imap.client import ImapClient

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


def search_uids(client: ImapClient, *criteria: str | date) -> list[int]:
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


def fetch_bodies(
    client: ImapClient, uids: Sequence[int], pipeline: Pipeline | None = None
) -> dict[int, bytes]:
    """UID FETCH BODY.PEEK[] of `uids` (never sets \\Seen): {uid: the message's bytes}."""
    found = fetch_headers(client, uids, ["BODY.PEEK[]"], pipeline)
    return {uid: item[HEADER_KEY] for uid, item in found.items() if HEADER_KEY in item}


def _imap_date(day: date) -> str:
    return f"{day.day}-{MONTHS[day.month - 1]}-{day.year}"


def fetch_headers(
    client: ImapClient,
    uids: Sequence[int],
    items: Sequence[str],
    pipeline: Pipeline | None = None,
) -> dict[int, dict[bytes, Any]]:
    """UID FETCH `items` (one of them a section with a literal: BODY.PEEK[HEADER...] or
    BODY.PEEK[]) for `uids`; the literal is under HEADER_KEY. With `pipeline`, after
    the commands already in flight on it."""
    if not uids:
        return {}
    line = pipeline or Pipeline(client)
    return line.result(line.send(uids, items))


@dataclass
class Fetch:
    """A UID FETCH sent, its answer read as it comes."""

    tag: bytes
    wanted: set[int]
    patterns: list[tuple[bytes, re.Pattern[bytes]]]
    out: dict[int, dict[bytes, Any]] = field(default_factory=dict)
    done: bool = False
    error: IMAPClientError | None = None


class Pipeline:
    """UID FETCH commands in flight on one connection (RFC 3501 5.5): the next batch's
    headers can be asked for before this one is processed, so that the server works
    while we do. Answers are read here, one response at a time, each filed under the
    command whose UIDs it names; no other command may be sent while any is in flight.

    imaplib's own reader runs several regular expressions and list operations per
    line, which for a 20,000-message header scan cost more than the server's work.
    Reads stay bounded as imaplib's are: lines by its _MAXLINE, literals by the
    connection's limit (SafeIMAPClient's read)."""

    def __init__(self, client: ImapClient) -> None:
        self.imap: imaplib.IMAP4 = client._imap
        self.waiting: deque[Fetch] = deque()

    def send(self, uids: Sequence[int], items: Sequence[str]) -> Fetch:
        asked = " ".join(items)
        tag = self.imap._command("UID", "FETCH", uid_ranges(uids), f"({asked})")
        self.imap.tagged_commands.pop(tag, None)  # answered here, not through imaplib
        # UID always; the other numbers only when asked for (a search each per response)
        patterns = [p for p in _NUMBERS if p[0] == b"UID" or p[0].decode() in asked]
        fetch = Fetch(tag if isinstance(tag, bytes) else tag.encode("ascii"), set(uids), patterns)
        self.waiting.append(fetch)
        return fetch

    def result(self, fetch: Fetch) -> dict[int, dict[bytes, Any]]:
        while not fetch.done:
            self._read_response()
        if fetch.error is not None:
            raise fetch.error
        return fetch.out

    def drain(self) -> None:
        """Read every answer still due (before the connection is used otherwise)."""
        while self.waiting:
            self._read_response()

    def _read_response(self) -> None:
        imap = self.imap
        line = _line(imap)
        if line[:1] != b"*":
            tag, _, rest = line.partition(b" ")
            finished = next((f for f in self.waiting if f.tag == tag), None)
            if finished is None:
                raise imaplib.IMAP4.abort(f"unexpected response: {line[:200]!r}")
            status, _, text = rest.partition(b" ")
            if status != b"OK":
                said = f"{status.decode(errors='replace')} {text.decode(errors='replace')}"
                finished.error = IMAPClientError(f"FETCH failed: {said.strip()}")
            finished.done = True
            self.waiting.remove(finished)
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
        if not (text.startswith(b"* ") and b" FETCH " in text[:40]):
            return  # EXISTS, EXPUNGE, ...: the next sync pass sees what they announce
        for fetch in self.waiting:
            item = _attributes(text, fetch.patterns)
            uid = item.get(b"UID")
            if uid in fetch.wanted:
                if literal is not None:
                    item[HEADER_KEY] = literal
                elif _EMPTY_HEADER.search(text):
                    item[HEADER_KEY] = b""
                fetch.out.setdefault(uid, {}).update(item)
                return


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
