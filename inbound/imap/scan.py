"""The header scan: what the headers of a batch say, which of its messages name a
contact (only those are fetched in full), and fetching their bodies.

Scanned headers are parsed in a worker process (inbound.imap.scanning); only the
few messages that name a contact have their headers parsed whole here (identity).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imapclient.exceptions import InvalidCriteriaError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.imap.client import ImapClient
from gateway.imap.rawfetch import Pipeline, fetch_bodies, fetch_headers, search_uids
from gateway.matching import match_contacts
from gateway.models import ContactEmail, utcnow
from gateway.models.mailboxes import MailboxFolder
from gateway.parsing import HeaderScan, parse
from inbound.imap import scanning

log = logging.getLogger(__name__)

# What the scan needs: the addresses to match, and Message-ID, Date and Subject for the
# message's identity (to know it when it is stored already). In-Reply-To and
# References are read from the full message of those that match: on every other
# message they would only cost bytes (long threads carry dozens of references).
HEADER_FIELDS = "From To Cc Bcc Reply-To Sender Date Message-ID Subject"
FETCH_HEADERS = f"BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})]"
BODY_BYTES = 20 * 1024 * 1024  # bodies fetched per command, by RFC822.SIZE


@dataclass(frozen=True)
class Scanned:
    addresses: set[str]  # those that could be contacts (never the account's users)
    message_id: str | None
    date: datetime | None
    gm_msgid: int | None = None  # Gmail's id of the message, the same under every label
    header: bytes | None = None  # the fetched header fields
    local_part_case: str = "lower"

    @property
    def identity(self) -> str:
        """As the pipeline will compute it (gateway.parsing); asked only of the few
        messages that name a contact, so the headers are parsed whole only for them."""
        if self.header is None:
            return ""
        return parse(self.header, self.local_part_case).identity()


def header_items(client: ImapClient) -> list[str]:
    items = [FETCH_HEADERS]
    if client.has_capability("X-GM-EXT-1"):
        items.append("X-GM-MSGID")
    return items


def window(client: ImapClient, config: Config, mailbox_id: int, state: MailboxFolder) -> list[int]:
    """UIDs of the selected folder's messages within [imap] window_days."""
    since = (utcnow() - timedelta(days=config.imap.window_days)).date()
    try:
        found = search_uids(client, "SINCE", since)
    except InvalidCriteriaError as exc:  # a server that cannot search by date
        log.warning(
            "mailbox %s: %s refused SEARCH SINCE (%s); reading the whole folder",
            mailbox_id,
            state.name,
            str(exc).splitlines()[0],
        )
        found = search_uids(client, "ALL")
    return [int(u) for u in found]


def scan(
    db: Database, config: Config, account_id: int, fetched: dict[int, dict[bytes, Any]]
) -> dict[int, Scanned]:
    """What each message's headers say (parsed here)."""
    raw = raw_headers(fetched)
    scans = scanning.scan_batch(raw, config.addresses.local_part_case)
    return scanned(db, config, account_id, fetched, raw, scans)


def scanned(
    db: Database,
    config: Config,
    account_id: int,
    fetched: dict[int, dict[bytes, Any]],
    raw: dict[int, bytes],
    scans: dict[int, HeaderScan],
) -> dict[int, Scanned]:
    """The scans with the addresses that could be contacts (never the account's
    users) and the Gmail message ids."""
    with db.read() as session:
        directory = AccountDirectory.load_by_id(session, account_id, config)
    case = config.addresses.local_part_case
    found: dict[int, Scanned] = {}
    for uid, header_scan in scans.items():
        gm = fetched[uid].get(b"X-GM-MSGID")
        found[uid] = Scanned(
            {a for a in header_scan.addresses if directory.can_be_contact(a)},
            header_scan.message_id,
            header_scan.date,
            int(gm) if gm is not None else None,
            raw[uid],
            case,
        )
    return found


def matching(session: Session, account_id: int, scanned: dict[int, Scanned]) -> list[int]:
    """UIDs whose headers name a contact of the account."""
    candidates = {a for s in scanned.values() for a in s.addresses}
    contacts = match_contacts(session, account_id, candidates)
    return sorted(uid for uid, s in scanned.items() if s.addresses & contacts.keys())


def newest_contact_email(session: Session) -> int:
    """The highest contact address id so far: any address added later has a higher one.
    (SQLite may give a deleted highest id to the next row; a message missed that way
    is found by the completeness audit.)"""
    return int(session.scalar(select(func.max(ContactEmail.id))) or 0)


def contact_emails_after(session: Session, account_id: int, mark: int) -> set[str]:
    return set(
        session.scalars(
            select(ContactEmail.address).where(
                ContactEmail.account_id == account_id, ContactEmail.id > mark
            )
        )
    )


def bodies(
    client: ImapClient,
    uids: Sequence[int],
    headers: dict[int, dict[bytes, Any]],
    pipeline: Pipeline | None = None,
) -> dict[int, bytes]:
    """The full messages of `uids`, fetched in commands of BODY_BYTES at most (sizes
    asked for these only: most scanned messages are never fetched)."""
    out: dict[int, bytes] = {}
    if not uids:
        return out
    if any(b"RFC822.SIZE" not in headers.get(uid, {}) for uid in uids):
        headers = fetch_headers(client, list(uids), ["RFC822.SIZE"], pipeline)
    for chunk in _by_size(uids, headers, BODY_BYTES):
        out.update(fetch_bodies(client, chunk, pipeline))
    return out


def raw_headers(fetched: dict[int, dict[bytes, Any]]) -> dict[int, bytes]:
    found = {int(uid): _header_bytes(item) for uid, item in fetched.items()}
    return {uid: raw for uid, raw in found.items() if raw is not None}


def _header_bytes(item: dict[bytes, Any]) -> bytes | None:
    for key, value in item.items():
        if key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
            return value
    return None


def _by_size(
    uids: Sequence[int], headers: dict[int, dict[bytes, Any]], limit: int
) -> Iterable[list[int]]:
    chunk: list[int] = []
    total = 0
    for uid in uids:
        size = int(headers.get(uid, {}).get(b"RFC822.SIZE") or 0)
        if chunk and total + size > limit:
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += size
    if chunk:
        yield chunk
