"""The copy of a sent message in the user's Sent folder, exactly once.

The delivery role calls `save_to_sent` after a message went out, over the IMAP
session the sync uses too (gateway.imap). The user's connected mailbox (either sync mode)
is searched for the Message-ID first (UID SEARCH HEADER, the value quoted by us:
nothing from mail reaches the IMAP wire raw). Servers that save their own copy of
mail sent through them (Gmail, Outlook, Zoho) get time to do so, and each mailbox
remembers whether its server does; otherwise the copy is APPENDed with \\Seen. A
crash between the APPEND and its record is harmless: the next try finds the copy.

SentCopies keeps the books: a copy is taken first ("copying N", a lease of
COPY_LEASE seconds, compare-and-set) so that two processes never both make it;
a failed copy is tried again with backoff, up to COPY_TRIES times.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update

from gateway.config import Config
from gateway.db import Database
from gateway.imap.client import ImapClient
from gateway.imap.connection import close
from gateway.imap.folders import find_folders
from gateway.imap.rawfetch import search_uids
from gateway.imap.session import open_session
from gateway.models import (
    DeliveryState,
    Mailbox,
    MailboxState,
    OutboundMessage,
    RawMessage,
    table_of,
    utcnow,
)
from gateway.vault import Vault

log = logging.getLogger(__name__)
GRACE = 3.0  # seconds a server that saves its own copy gets to do so
_SAFE_ID = re.compile(r"[^\x00-\x20\x7f<>]+@[^\x00-\x20\x7f<>]+")


def save_to_sent(
    db: Database,
    config: Config,
    vault: Vault,
    user_id: int,
    raw: bytes,
    message_id: str,
    via_mailbox: bool,
    grace: float = GRACE,
) -> str:
    """ "appended", "present" (already there, or saved by the server) or "no mailbox"."""
    with db.read() as session:
        mailbox = session.scalars(
            select(Mailbox)
            .where(Mailbox.user_id == user_id, Mailbox.state == MailboxState.ACTIVE.value)
            .order_by(Mailbox.id)
        ).first()
        if mailbox is None:
            return "no mailbox"
        mailbox_id, saves = mailbox.id, mailbox.server_saves_sent
    if not _SAFE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID {message_id!r} cannot be searched for safely")
    client = open_session(db, config, vault, mailbox_id)
    try:
        sent = find_folders(client.list_folders()).sent
        if sent is None:
            return "no mailbox"  # no Sent folder to put it in
        client.select_folder(sent)
        if _present(client, message_id):
            return _learnt(db, mailbox_id, via_mailbox, True)
        if via_mailbox and saves is not False:
            time.sleep(grace)  # a server that copies by itself may not have done so yet
            client.noop()
            if _present(client, message_id):
                return _learnt(db, mailbox_id, via_mailbox, True)
        client.append(sent, raw, flags=[b"\\Seen"], msg_time=utcnow())
        _learnt(db, mailbox_id, via_mailbox, False)
        return "appended"
    finally:
        close(client)


def _present(client: ImapClient, message_id: str) -> bool:
    quoted = '"' + message_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return bool(search_uids(client, "HEADER", "Message-ID", quoted))


def _learnt(db: Database, mailbox_id: int, via_mailbox: bool, saves: bool) -> str:
    if via_mailbox:
        with db.session() as session:
            session.get_one(Mailbox, mailbox_id).server_saves_sent = saves
    return "present" if saves else "appended"


class SentCopies:
    """The bookkeeping of copies in Sent: which are due, and taking one so that two
    processes never both make it; `save` makes it (save_to_sent, bound)."""

    def __init__(
        self, db: Database, config: Config, save: Callable[[int, bytes, str, bool], str]
    ) -> None:
        self.db = db
        self.config = config
        self.sent_copy = save

    def copy_to_sent(self, message_id: int) -> str | None:
        """Put the sent message's copy in Sent unless that was done, given up on, or is
        being done by another process; returns the outcome recorded, or None when there
        was nothing to do. The copy is taken first ("copying N", a lease of COPY_LEASE
        seconds, compare-and-set), so that two processes never both make it."""
        assert self.sent_copy is not None
        now = utcnow()
        with self.db.read() as session:
            message = session.get_one(OutboundMessage, message_id)
            previous, stamp = message.sent_copy, message.updated_at
            if message.state != DeliveryState.SENT.value or not _copy_due(previous):
                return None
            if (previous or "").startswith(COPYING) and (now - stamp).total_seconds() < COPY_LEASE:
                return None  # another process is making it
            tries = _copy_tries(previous)
            user_id, route = message.user_id, message.route
            header_id = message.message_id_header
            raw = session.get_one(RawMessage, message.raw_message_id).data
        if not self._take_copy(message_id, previous, stamp, tries):
            return None  # another process took it first
        try:
            outcome = self.sent_copy(user_id, raw, header_id, route == "mailbox")
        except Exception as exc:  # the mail went out; only its copy is missing
            log.warning("delivery: no copy of message %s in Sent yet: %s", message_id, exc)
            tries += 1
            word = "gave up" if tries >= COPY_TRIES else f"error {tries}"
            outcome = f"{word}: {type(exc).__name__}: {exc}"
        with self.db.session() as session:
            message = session.get_one(OutboundMessage, message_id)
            message.sent_copy = outcome[:200]
            message.updated_at = utcnow()
        return outcome

    def _take_copy(
        self, message_id: int, previous: str | None, stamp: datetime, tries: int
    ) -> bool:
        """Compare-and-set: the copy is ours if its outcome and time are still what we
        read (`previous`, `stamp`); now "copying N" with the time of taking."""
        om = table_of(OutboundMessage)
        same = om.c.sent_copy.is_(None) if previous is None else om.c.sent_copy == previous
        with self.db.connection() as connection:
            taken = connection.execute(
                update(om)
                .where(om.c.id == message_id, same, om.c.updated_at == stamp)
                .values(sent_copy=f"{COPYING} {tries}", updated_at=utcnow())
            ).rowcount
        return bool(taken)

    def copies_due(self, limit: int) -> list[int]:
        """Sent messages whose copy in Sent is missing: never tried (a stop between the
        delivery and the copy), failed and due again (retry_base, doubling), or taken
        by a process that stopped before it was done (COPY_LEASE ago)."""
        now = utcnow()
        with self.db.read() as session:
            rows = session.execute(
                select(OutboundMessage.id, OutboundMessage.sent_copy, OutboundMessage.updated_at)
                .where(
                    OutboundMessage.state == DeliveryState.SENT.value,
                    (OutboundMessage.sent_copy.is_(None))
                    | (OutboundMessage.sent_copy.like("error %"))
                    | (OutboundMessage.sent_copy.like(f"{COPYING} %")),
                )
                .order_by(OutboundMessage.updated_at)
                .limit(limit * 4)
            ).all()
        due = []
        for message_id, outcome, updated in rows:
            if outcome is None:
                wait = 0.0
            elif outcome.startswith(COPYING):
                wait = COPY_LEASE
            else:
                wait = min(
                    self.config.outbound.retry_base * 2 ** (_copy_tries(outcome) - 1),
                    self.config.outbound.retry_max,
                )
            if (now - updated).total_seconds() >= wait:
                due.append(int(message_id))
        return due[:limit]


COPY_TRIES = 8  # tries of a copy to Sent before it is given up
COPY_CONCURRENCY = 4  # copies to Sent made at once by a delivery process
COPYING = "copying"  # "copying N": taken by a process, after N failed tries
COPY_LEASE = 600.0  # seconds after which a copy taken but never finished is due again


def _copy_due(outcome: str | None) -> bool:
    return outcome is None or outcome.startswith(("error ", f"{COPYING} "))


def _copy_tries(outcome: str | None) -> int:
    if outcome is None:
        return 0
    for word in ("error ", f"{COPYING} "):
        if outcome.startswith(word):
            count = outcome[len(word) :].split(":", 1)[0]
            return int(count) if count.isdigit() else 1
    return 0
