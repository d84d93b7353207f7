"""One sync pass of one mailbox: header scan, match, fetch matched bodies, store,
checkpoint. Each folder (INBOX, Sent; found by RFC 6154 flags) goes through:

                 SELECT (read-only)
                        |
         UIDVALIDITY or name changed? --yes--> forget the checkpoint and the header
                        |                      index (rescan: stored messages are
                        |no                    known again, no duplicate)
                        v
       +------- initial_done? -------+
       | no                          | yes
       v                             v
    INITIAL                  HIGHESTMODSEQ and UIDNEXT unchanged? --yes--> DONE
    the window's UIDs,               | no
    newest first, in                 v
    batches; checkpoint      INCREMENTAL: UIDs above last_uid, oldest
    scan_low_uid; then       first, in batches; checkpoint last_uid
    initial_done = true              |
       |                             |
       +------------> INCREMENTAL ---+--> HIGHESTMODSEQ kept --> DONE

Every batch (inbound.imap.batches): FETCH BODY.PEEK[HEADER.FIELDS (...)], match the
addresses against contacts (inbound.imap.scan), FETCH BODY.PEEK[] of the matched
only (never sets \\Seen), then store them, index the rest's headers and move the
checkpoint in one transaction. After the folders: the backfill of indexed messages
that name a contact created since (inbound.imap.header_index), and the purge of
index entries out of the window. The audit (inbound.imap.audit) runs apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway import events
from gateway.config import Config
from gateway.db import Database
from gateway.imap.client import ImapClient
from gateway.imap.folders import find_folders
from gateway.imap.rawfetch import search_uids
from gateway.leases import Fence
from gateway.models import ScannedMessage, utcnow
from gateway.models.mailboxes import FolderRole, Mailbox, MailboxFolder
from inbound.imap import scanning
from inbound.imap.audit import audit
from inbound.imap.batches import run_batches
from inbound.imap.header_index import backfill, purge
from inbound.imap.reports import AuditFolder, FolderReport, SyncReport
from inbound.imap.scan import window
from inbound.imap.target import Target, source_key

MAILBOX_SYNC_COMPLETED = "mailbox.sync_completed"

__all__ = ["AuditFolder", "FolderReport", "MailboxSync", "SyncReport", "source_key"]

log = logging.getLogger(__name__)


class MailboxSync:
    """Runs sync passes of one mailbox over a logged-in IMAP client (blocking: a thread)."""

    def __init__(
        self,
        db: Database,
        config: Config,
        mailbox_id: int,
        *,
        stored: Callable[[], None] | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.target = Target.load(db, config, mailbox_id, stored or (lambda: None), fence)
        self.db, self.config, self.mailbox_id = db, config, mailbox_id

    def run(self, client: ImapClient) -> SyncReport:
        report = SyncReport()
        if self.target.sync_mode != "two_way":
            return report  # one-way sync pulls nothing
        scanning.warm()  # once per process: starts while the folders are listed and searched
        folders = find_folders(client.list_folders())
        history_was_in = self._history_in()
        for role, name in ((FolderRole.INBOX, folders.inbox), (FolderRole.SENT, folders.sent)):
            if name is not None:
                report.folders.append(self.sync_folder(client, role, name))
        backfill(self.target, client, report)
        purge(self.target)
        with self.target.session() as session:
            mailbox = session.get_one(Mailbox, self.mailbox_id)
            mailbox.last_sync_at = utcnow()
            if not history_was_in and self._history_in(session):
                done = session.scalars(
                    select(MailboxFolder).where(MailboxFolder.mailbox_id == self.mailbox_id)
                ).all()
                events.emit(
                    session,
                    mailbox.account_id,
                    MAILBOX_SYNC_COMPLETED,
                    mailbox_id=mailbox.id,
                    email=mailbox.email,
                    scanned=sum(f.scanned for f in done),
                    matched=sum(f.matched for f in done),
                    fetched=sum(f.fetched for f in done),
                )
        return report

    def _history_in(self, session: Session | None = None) -> bool:
        """Whether the initial sync of every folder found is done (none found: not)."""
        if session is None:
            with self.db.read() as reading:
                return self._history_in(reading)
        done = session.scalars(
            select(MailboxFolder.initial_done).where(MailboxFolder.mailbox_id == self.mailbox_id)
        ).all()
        return bool(done) and all(done)

    def audit(self, client: ImapClient, *, repair: bool = True) -> list[AuditFolder]:
        """Compare the server's census of each synced folder (within the window) with
        what was stored; fetch what involves a contact and is missing."""
        return audit(self.target, client, repair=repair)

    def sync_folder(self, client: ImapClient, role: FolderRole, name: str) -> FolderReport:
        report = FolderReport(role.value, name)
        info = client.select_folder(name, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info.get(b"UIDNEXT") or 0)
        modseq = info.get(b"HIGHESTMODSEQ")  # CONDSTORE (RFC 7162), where enabled
        state = self._folder_state(role, name, uidvalidity, report)
        if not state.initial_done:
            self._initial(client, state, uidnext, report)
        elif (
            modseq is not None
            and state.highestmodseq == int(modseq)
            and uidnext
            and uidnext - 1 <= state.last_uid
        ):
            return report  # nothing at all changed in the folder since the last pass
        self._incremental(client, state, report)
        if modseq is not None:
            self.target.update(state, highestmodseq=int(modseq))
        return report

    def _folder_state(
        self, role: FolderRole, name: str, uidvalidity: int, report: FolderReport
    ) -> MailboxFolder:
        """The folder's checkpoint, forgotten when its UIDVALIDITY or name changed."""
        with self.target.session() as session:
            folder = session.scalar(
                select(MailboxFolder).where(
                    MailboxFolder.mailbox_id == self.mailbox_id, MailboxFolder.role == role.value
                )
            )
            if folder is None:
                folder = MailboxFolder(mailbox_id=self.mailbox_id, role=role.value, name=name)
                session.add(folder)
            if folder.name != name or folder.uidvalidity != uidvalidity:
                if folder.uidvalidity is not None:
                    report.uidvalidity_changed = folder.uidvalidity != uidvalidity
                    log.warning(
                        "mailbox %s: folder %r changed (UIDVALIDITY %s -> %s, name %r -> %r): "
                        "rescanning it",
                        self.mailbox_id,
                        name,
                        folder.uidvalidity,
                        uidvalidity,
                        folder.name,
                        name,
                    )
                if folder.id is not None:
                    session.execute(
                        delete(ScannedMessage).where(ScannedMessage.folder_id == folder.id)
                    )
                folder.name, folder.uidvalidity = name, uidvalidity
                folder.last_uid, folder.initial_done, folder.scan_low_uid = 0, False, None
                folder.total = folder.scanned = folder.matched = folder.fetched = 0
            folder.updated_at = utcnow()
            session.flush()
            session.expunge(folder)
            return folder

    def _initial(
        self, client: ImapClient, state: MailboxFolder, uidnext: int, report: FolderReport
    ) -> None:
        found = sorted(window(client, self.config, self.mailbox_id, state), reverse=True)
        top = state.last_uid or (uidnext - 1 if uidnext else (found[0] if found else 0))
        todo = [
            u for u in found if u <= top and (state.scan_low_uid is None or u < state.scan_low_uid)
        ]
        self.target.update(state, total=len([u for u in found if u <= top]), last_uid=top)
        size = self.config.imap.batch_size
        batches = [todo[start : start + size] for start in range(0, len(todo), size)]
        run_batches(
            self.target, client, state, [(b, {"scan_low_uid": min(b)}) for b in batches], report
        )
        self.target.update(state, initial_done=True)

    def _incremental(self, client: ImapClient, state: MailboxFolder, report: FolderReport) -> None:
        # "UID n:*" always matches the highest UID, even below n: filter.
        found = search_uids(client, "UID", f"{state.last_uid + 1}:*")
        new = sorted(u for u in (int(x) for x in found) if u > state.last_uid)
        size = self.config.imap.batch_size
        batches = [new[start : start + size] for start in range(0, len(new), size)]
        run_batches(
            self.target, client, state, [(b, {"last_uid": max(b)}) for b in batches], report
        )
