"""The header index: messages of the window whose headers named no contact are
remembered (Message-ID, date, the addresses that could be contacts), so that a
contact created later brings its past mail in without scanning the folders again:
the backfill fetches the indexed messages that now name a contact. Entries that
fall out of the window are purged."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.db import insert_ignore
from gateway.imap.client import ImapClient
from gateway.imap.rawfetch import fetch_headers
from gateway.models import ScannedAddress, ScannedMessage, table_of, utcnow
from gateway.models.mailboxes import MailboxFolder
from gateway.store import accept_in
from inbound.imap.reports import SyncReport
from inbound.imap.scan import Scanned, bodies
from inbound.imap.target import Target


def index(
    target: Target,
    session: Session,
    state: MailboxFolder,
    scanned: dict[int, Scanned],
    wanted: set[int],
) -> None:
    """Remember messages that named no contact, for contacts created later; those in
    `wanted` are to be fetched by the next backfill."""
    if not scanned:
        return
    connection = session.connection()
    rows = [
        {
            "account_id": target.account_id,
            "mailbox_id": target.mailbox_id,
            "folder_id": state.id,
            "uidvalidity": state.uidvalidity,
            "uid": uid,
            "message_id_header": (s.message_id or "")[:998] or None,
            "sent_at": s.date,
            "wanted": uid in wanted,
        }
        for uid, s in scanned.items()
    ]
    insert_ignore(session, table_of(ScannedMessage), rows, ["folder_id", "uidvalidity", "uid"])
    ids = dict(
        connection.execute(
            select(ScannedMessage.uid, ScannedMessage.id).where(
                ScannedMessage.folder_id == state.id,
                ScannedMessage.uidvalidity == state.uidvalidity,
                ScannedMessage.uid.in_(list(scanned)),
            )
        ).all()
    )
    addresses = [
        {"scanned_id": ids[uid], "account_id": target.account_id, "address": address}
        for uid, s in scanned.items()
        if uid in ids
        for address in sorted(s.addresses)
    ]
    insert_ignore(session, table_of(ScannedAddress), addresses, ["scanned_id", "address"])


def backfill(target: Target, client: ImapClient, report: SyncReport) -> None:
    """Fetch the indexed messages that name a contact created since they were scanned."""
    folders, by_folder = _wanted(target)
    for folder_id, uids in by_folder.items():
        state = folders[folder_id]
        client.select_folder(state.name, readonly=True)
        line = next((f for f in report.folders if f.name == state.name), None)
        size = target.config.imap.batch_size
        for start in range(0, len(uids), size):
            fetched = _fetch(target, client, state, uids[start : start + size])
            if line is not None:
                line.matched += fetched
                line.fetched += fetched
            if fetched:
                target.stored()


def _wanted(target: Target) -> tuple[dict[int, MailboxFolder], dict[int, list[int]]]:
    """The mailbox's folders, and the wanted UIDs of each (of its UIDVALIDITY now)."""
    with target.db.read() as session:
        wanted = session.execute(
            select(ScannedMessage.folder_id, ScannedMessage.uidvalidity, ScannedMessage.uid)
            .where(ScannedMessage.mailbox_id == target.mailbox_id, ScannedMessage.wanted)
            .order_by(ScannedMessage.folder_id, ScannedMessage.uid)
        ).all()
        folders = {
            f.id: f
            for f in session.scalars(
                select(MailboxFolder).where(MailboxFolder.mailbox_id == target.mailbox_id)
            )
        }
        for folder in folders.values():
            session.expunge(folder)
    by_folder: dict[int, list[int]] = {}
    for folder_id, uidvalidity, uid in wanted:
        if folder_id in folders and folders[folder_id].uidvalidity == uidvalidity:
            by_folder.setdefault(folder_id, []).append(int(uid))
    return folders, by_folder


def _fetch(target: Target, client: ImapClient, state: MailboxFolder, batch: list[int]) -> int:
    """Store the bodies of `batch` and drop their index entries, in one transaction;
    how many were fetched."""
    items = ["RFC822.SIZE"]
    if client.has_capability("X-GM-EXT-1"):
        items.append("X-GM-MSGID")
    meta = fetch_headers(client, batch, items)
    found = bodies(client, batch, meta)
    with target.session() as session:
        for uid in sorted(found):
            gm = meta.get(uid, {}).get(b"X-GM-MSGID")
            known = Scanned(set(), None, None, int(gm) if gm is not None else None)
            accept_in(session, found[uid], target.arrival(state, uid, known))
        session.execute(
            delete(ScannedMessage).where(
                ScannedMessage.folder_id == state.id,
                ScannedMessage.uidvalidity == state.uidvalidity,
                ScannedMessage.uid.in_(batch),
            )
        )
        folder = session.get_one(MailboxFolder, state.id)
        folder.matched += len(found)
        folder.fetched += len(found)
    return len(found)


def purge(target: Target) -> None:
    """Forget indexed headers that fell out of the window."""
    since = utcnow() - timedelta(days=target.config.imap.window_days)
    with target.session() as session:
        session.execute(
            delete(ScannedMessage).where(
                ScannedMessage.mailbox_id == target.mailbox_id, ScannedMessage.sent_at < since
            )
        )
