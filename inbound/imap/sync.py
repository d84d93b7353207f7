"""One sync pass of one mailbox: header scan, match, fetch matched bodies, store, checkpoint.

    per folder (INBOX, Sent):
      SELECT (read-only) -> UIDVALIDITY changed? forget the checkpoint (no duplicates:
                            stored messages are recognised again by the pipeline)
      initial sync       -> UIDs within the window, newest first, in batches
      incremental        -> UIDs above the checkpoint, oldest first, in batches
      each batch         -> FETCH BODY.PEEK[HEADER.FIELDS (...)]; match addresses
                            against contacts; FETCH BODY.PEEK[] of matched only
                            (never sets \\Seen); store them and move the checkpoint
                            in one transaction

The checkpoint moves only in the transaction that stores the batch's messages,
so a crash or a dropped connection redoes at most one batch, and the store
recognises what it already holds (one sighting per mailbox, folder, UIDVALIDITY
and UID).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from imapclient.exceptions import InvalidCriteriaError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.db import Database, insert_ignore
from gateway.directory import AccountDirectory
from gateway.imap.folders import find_folders
from gateway.imap.rawfetch import Pipeline, fetch_bodies, fetch_headers, search_uids
from gateway.matching import match_contacts
from gateway.models import (
    ContactEmail,
    Keep,
    Message,
    ScannedAddress,
    ScannedMessage,
    Sighting,
    SightingState,
    Source,
    table_of,
    utcnow,
)
from gateway.models.mailboxes import FolderRole, Mailbox, MailboxFolder
from gateway.parsing import HeaderScan, parse
from gateway.store import Arrival, accept_batch_in, accept_in
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


@dataclass(frozen=True)
class _Scanning:
    """A batch whose headers arrived and are being parsed."""

    uids: list[int]
    checkpoint: dict[str, Any]
    headers: dict[int, dict[bytes, Any]]
    raw: dict[int, bytes]  # each message's header fields
    scans: Future[dict[int, HeaderScan]]  # parsed in a worker process


@dataclass(frozen=True)
class _Matched:
    """A batch matched and its bodies fetched, ready to be written."""

    scanned: dict[int, Scanned]
    wanted: list[int]
    held: set[int]
    bodies: dict[int, bytes]
    mark: int  # the newest contact address when the batch was matched


@dataclass
class FolderReport:
    role: str
    name: str
    scanned: int = 0
    matched: int = 0
    fetched: int = 0
    uidvalidity_changed: bool = False


@dataclass
class AuditFolder:
    role: str
    name: str
    on_server: int = 0  # messages within the window
    involving_contacts: int = 0
    missing: int = 0  # involving a contact, never stored
    repaired: int = 0


@dataclass
class SyncReport:
    folders: list[FolderReport] = field(default_factory=list)

    @property
    def fetched(self) -> int:
        return sum(f.fetched for f in self.folders)

    @property
    def scanned(self) -> int:
        return sum(f.scanned for f in self.folders)

    @property
    def matched(self) -> int:
        return sum(f.matched for f in self.folders)


class MailboxSync:
    """Runs sync passes of one mailbox over a logged-in IMAP client (blocking: a thread)."""

    def __init__(
        self,
        db: Database,
        config: Config,
        mailbox_id: int,
        *,
        stored: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.mailbox_id = mailbox_id
        self.stored = stored or (lambda: None)
        with db.read() as session:
            mailbox = session.get_one(Mailbox, mailbox_id)
            self.account_id = mailbox.account_id
            self.user_id = mailbox.user_id
            self.sync_mode = mailbox.sync_mode

    def run(self, client: Any) -> SyncReport:
        report = SyncReport()
        if self.sync_mode != "two_way":
            return report  # one-way sync pulls nothing
        scanning.warm()  # once per process: starts while the folders are listed and searched
        folders = find_folders(client.list_folders())
        for role, name in ((FolderRole.INBOX, folders.inbox), (FolderRole.SENT, folders.sent)):
            if name is not None:
                report.folders.append(self.sync_folder(client, role, name))
        self._backfill(client, report)
        self._purge()
        with self.db.session() as session:
            session.get_one(Mailbox, self.mailbox_id).last_sync_at = utcnow()
        return report

    # -- completeness audit ---------------------------------------------------------

    def audit(self, client: Any, *, repair: bool = True) -> list[AuditFolder]:
        """Compare the server's census of each synced folder (within the window) with
        what was stored; fetch what involves a contact and is missing."""
        out: list[AuditFolder] = []
        if self.sync_mode != "two_way":
            return out
        with self.db.read() as session:
            folders = list(
                session.scalars(
                    select(MailboxFolder).where(MailboxFolder.mailbox_id == self.mailbox_id)
                )
            )
            for folder in folders:
                session.expunge(folder)
        for state in folders:
            info = client.select_folder(state.name, readonly=True)
            if int(info[b"UIDVALIDITY"]) != state.uidvalidity:
                continue  # the next sync pass reads this folder again anyway
            out.append(self._audit_folder(client, state, repair))
        return out

    def _audit_folder(self, client: Any, state: MailboxFolder, repair: bool) -> AuditFolder:
        line = AuditFolder(state.role, state.name)
        uids = sorted(u for u in self._window(client, state) if u <= state.last_uid)
        line.on_server = len(uids)
        size = self.config.imap.batch_size
        for start in range(0, len(uids), size):
            batch = uids[start : start + size]
            headers = fetch_headers(client, batch, self._header_items(client))
            scanned = self._scan(headers)
            with self.db.read() as session:
                involved = self._matching(session, scanned)
                missing = self._not_stored(session, state, involved, scanned)
            line.involving_contacts += len(involved)
            line.missing += len(missing)
            if repair and missing:
                bodies = self._bodies(client, missing, headers)
                with self.db.session() as session:
                    for uid in sorted(bodies):
                        accept_in(session, bodies[uid], self._arrival(state, uid, scanned.get(uid)))
                    folder = session.get_one(MailboxFolder, state.id)
                    folder.fetched += len(bodies)
                line.repaired += len(bodies)
                if bodies:
                    self.stored()
        if line.missing:
            log.warning(
                "mailbox %s: audit of %r found %s message(s) involving contacts that were "
                "never stored (%s fetched now)",
                self.mailbox_id,
                state.name,
                line.missing,
                line.repaired,
            )
        with self.db.session() as session:
            folder = session.get_one(MailboxFolder, state.id)
            folder.missing = line.missing - line.repaired
            folder.audited_at = utcnow()
        return line

    def _not_stored(
        self,
        session: Session,
        state: MailboxFolder,
        uids: Sequence[int],
        scanned: dict[int, Scanned],
    ) -> list[int]:
        have = self._stored(session, state, uids, scanned)
        return [uid for uid in uids if uid not in have]

    def _stored(
        self,
        session: Session,
        state: MailboxFolder,
        uids: Sequence[int],
        scanned: dict[int, Scanned],
    ) -> set[int]:
        """Of `uids`, those already held: a live sighting of this very message (by UID,
        or by Gmail's message id under another label), or a stored message with the
        same identity (it came another way: the dropbox, another folder). Identity,
        not Message-ID alone: a message reusing another's Message-ID is not held."""
        if not uids:
            return set()
        keys = {self._key(state, uid, scanned.get(uid)): uid for uid in uids}
        have = {
            keys[key]
            for key in session.scalars(
                select(Sighting.source_key).where(
                    Sighting.user_id == self.user_id,
                    Sighting.source == Source.IMAP.value,
                    Sighting.source_key.in_(list(keys)),
                    Sighting.state != SightingState.DISCARDED.value,
                )
            )
        }
        identities: dict[str, list[int]] = {}
        for uid in uids:
            if uid in scanned and scanned[uid].identity:
                identities.setdefault(scanned[uid].identity, []).append(uid)
        for identity in session.scalars(
            select(Message.identity).where(
                Message.account_id == self.account_id,
                Message.identity.in_(list(identities)),
            )
        ):
            have.update(identities[identity])
        return have

    # -- one folder -----------------------------------------------------------------

    def sync_folder(self, client: Any, role: FolderRole, name: str) -> FolderReport:
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
            self._update(state, highestmodseq=int(modseq))
        return report

    def _folder_state(
        self, role: FolderRole, name: str, uidvalidity: int, report: FolderReport
    ) -> MailboxFolder:
        with self.db.session() as session:
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

    def _window(self, client: Any, state: MailboxFolder) -> list[int]:
        """UIDs of the selected folder's messages within [imap] window_days."""
        since = (utcnow() - timedelta(days=self.config.imap.window_days)).date()
        try:
            found = search_uids(client, "SINCE", since)
        except InvalidCriteriaError as exc:  # a server that cannot search by date
            log.warning(
                "mailbox %s: %s refused SEARCH SINCE (%s); reading the whole folder",
                self.mailbox_id,
                state.name,
                str(exc).splitlines()[0],
            )
            found = search_uids(client, "ALL")
        return [int(u) for u in found]

    def _initial(
        self, client: Any, state: MailboxFolder, uidnext: int, report: FolderReport
    ) -> None:
        window = sorted(self._window(client, state), reverse=True)
        top = state.last_uid or (uidnext - 1 if uidnext else (window[0] if window else 0))
        todo = [
            u for u in window if u <= top and (state.scan_low_uid is None or u < state.scan_low_uid)
        ]
        self._update(state, total=len([u for u in window if u <= top]), last_uid=top)
        size = self.config.imap.batch_size
        batches = [todo[start : start + size] for start in range(0, len(todo), size)]
        self._batches(client, state, [(b, {"scan_low_uid": min(b)}) for b in batches], report)
        self._update(state, initial_done=True)

    def _incremental(self, client: Any, state: MailboxFolder, report: FolderReport) -> None:
        # "UID n:*" always matches the highest UID, even below n: filter.
        found = search_uids(client, "UID", f"{state.last_uid + 1}:*")
        new = sorted(u for u in (int(x) for x in found) if u > state.last_uid)
        size = self.config.imap.batch_size
        batches = [new[start : start + size] for start in range(0, len(new), size)]
        self._batches(client, state, [(b, {"last_uid": max(b)}) for b in batches], report)

    def _batches(
        self,
        client: Any,
        state: MailboxFolder,
        batches: Sequence[tuple[list[int], dict[str, Any]]],
        report: FolderReport,
    ) -> None:
        """Each batch in order, in overlapping stages: the server reads the next batch's
        headers (asked for before this one is handled) while this one is parsed (in a
        worker process, inbound.imap.scanning), matched and its bodies fetched, and
        the one before is written (a thread). Writes stay in order, one at a time: a
        batch is handed to the writer only once the one before is committed, and a
        failed write stops the folder there, its checkpoint never passing it."""
        items = self._header_items(client)
        pipeline = Pipeline(client)
        try:
            self._pipelined(client, state, batches, report, items, pipeline)
        except BaseException:
            # A write failed with the next batch's headers asked for: read them off the
            # connection (it stays usable), then report the failure.
            with contextlib.suppress(Exception):
                pipeline.drain()
            raise

    def _pipelined(
        self,
        client: Any,
        state: MailboxFolder,
        batches: Sequence[tuple[list[int], dict[str, Any]]],
        report: FolderReport,
        items: list[str],
        pipeline: Pipeline,
    ) -> None:
        case = self.config.addresses.local_part_case
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-write") as writer:
            ahead: _Scanning | None = None
            writing: Future[None] | None = None
            asked = pipeline.send(batches[0][0], items) if batches else None
            for n, (uids, checkpoint) in enumerate(batches):
                assert asked is not None
                headers = pipeline.result(asked)
                # The server reads the next batch's headers while this one is handled.
                asked = pipeline.send(batches[n + 1][0], items) if n + 1 < len(batches) else None
                raw = _raw_headers(headers)
                current = _Scanning(uids, checkpoint, headers, raw, scanning.submit(raw, case))
                if ahead is not None:
                    writing = self._batch(client, state, ahead, report, writer, writing, pipeline)
                ahead = current
            if ahead is not None:
                writing = self._batch(client, state, ahead, report, writer, writing, pipeline)
            if writing is not None:
                writing.result()

    def _batch(
        self,
        client: Any,
        state: MailboxFolder,
        work: _Scanning,
        report: FolderReport,
        writer: ThreadPoolExecutor,
        previous: Future[None] | None,
        pipeline: Pipeline,
    ) -> Future[None]:
        """Match the batch and fetch its bodies here; its write goes to `writer` once
        the write of the batch before (`previous`) is committed."""
        case = self.config.addresses.local_part_case
        scans = scanning.result(work.scans, work.raw, case)
        scanned = self._scanned(work.headers, work.raw, scans)
        with self.db.read() as session:
            mark = _newest_contact_email(session)
            wanted = self._matching(session, scanned)
            held = self._stored(session, state, wanted, scanned)
        bodies = self._bodies(client, [u for u in wanted if u not in held], work.headers, pipeline)
        if previous is not None:
            previous.result()  # raises what that write raised: nothing after it is written
        return writer.submit(
            self._write, state, work, _Matched(scanned, wanted, held, bodies, mark), report
        )

    def _write(
        self, state: MailboxFolder, work: _Scanning, found: _Matched, report: FolderReport
    ) -> None:
        """One transaction: the batch's messages, its header index and the checkpoint."""
        scanned, wanted, held, bodies = found.scanned, found.wanted, found.held, found.bodies
        with self.db.session() as session:
            accept_batch_in(
                session,
                [
                    (bodies[uid], self._arrival(state, uid, scanned.get(uid)))
                    for uid in sorted(bodies)
                ],
            )
            rest = {
                u: s
                for u, s in scanned.items()
                if u not in bodies and u not in held and s.addresses
            }
            # A contact address added since the look above (its want_scanned() ran
            # before these rows existed): mark its messages wanted here, and those
            # matched but not fetched (gone meanwhile) too; the next pass fetches them.
            added = self._contact_emails_after(session, found.mark)
            matched = set(wanted)
            again = {u for u, s in rest.items() if u in matched or s.addresses & added}
            self._index(session, state, rest, again)
            folder = session.get_one(MailboxFolder, state.id)
            folder.scanned += len(work.uids)
            folder.matched += len(wanted)
            folder.fetched += len(bodies)
            for key, value in work.checkpoint.items():
                setattr(folder, key, value)
                setattr(state, key, value)
            folder.updated_at = utcnow()
        report.scanned += len(work.uids)
        report.matched += len(wanted)
        report.fetched += len(bodies)
        if bodies:
            self.stored()

    def _scan(self, fetched: dict[int, dict[bytes, Any]]) -> dict[int, Scanned]:
        """What each message's headers say (parsed here)."""
        raw = _raw_headers(fetched)
        case = self.config.addresses.local_part_case
        return self._scanned(fetched, raw, scanning.scan_batch(raw, case))

    def _scanned(
        self,
        fetched: dict[int, dict[bytes, Any]],
        raw: dict[int, bytes],
        scans: dict[int, HeaderScan],
    ) -> dict[int, Scanned]:
        """The scans with the addresses that could be contacts (never the account's
        users) and the Gmail message ids."""
        with self.db.read() as session:
            directory = AccountDirectory.load_by_id(session, self.account_id, self.config)
        case = self.config.addresses.local_part_case
        found: dict[int, Scanned] = {}
        for uid, scan in scans.items():
            gm = fetched[uid].get(b"X-GM-MSGID")
            found[uid] = Scanned(
                {a for a in scan.addresses if directory.can_be_contact(a)},
                scan.message_id,
                scan.date,
                int(gm) if gm is not None else None,
                raw[uid],
                case,
            )
        return found

    def _contact_emails_after(self, session: Session, mark: int) -> set[str]:
        return set(
            session.scalars(
                select(ContactEmail.address).where(
                    ContactEmail.account_id == self.account_id, ContactEmail.id > mark
                )
            )
        )

    def _matching(self, session: Session, scanned: dict[int, Scanned]) -> list[int]:
        """UIDs whose headers name a contact of the account."""
        candidates = {a for s in scanned.values() for a in s.addresses}
        contacts = match_contacts(session, self.account_id, candidates)
        return sorted(uid for uid, s in scanned.items() if s.addresses & contacts.keys())

    def _index(
        self,
        session: Session,
        state: MailboxFolder,
        scanned: dict[int, Scanned],
        wanted: set[int],
    ) -> None:
        """Remember messages that named no contact, for contacts created later."""
        if not scanned:
            return
        connection = session.connection()
        rows = [
            {
                "account_id": self.account_id,
                "mailbox_id": self.mailbox_id,
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
            {"scanned_id": ids[uid], "account_id": self.account_id, "address": address}
            for uid, s in scanned.items()
            if uid in ids
            for address in sorted(s.addresses)
        ]
        insert_ignore(session, table_of(ScannedAddress), addresses, ["scanned_id", "address"])

    def _backfill(self, client: Any, report: SyncReport) -> None:
        """Fetch the indexed messages that name a contact created since they were scanned."""
        with self.db.read() as session:
            wanted = session.execute(
                select(ScannedMessage.folder_id, ScannedMessage.uidvalidity, ScannedMessage.uid)
                .where(ScannedMessage.mailbox_id == self.mailbox_id, ScannedMessage.wanted)
                .order_by(ScannedMessage.folder_id, ScannedMessage.uid)
            ).all()
            folders = {
                f.id: f
                for f in session.scalars(
                    select(MailboxFolder).where(MailboxFolder.mailbox_id == self.mailbox_id)
                )
            }
            for folder in folders.values():
                session.expunge(folder)
        by_folder: dict[int, list[int]] = {}
        for folder_id, uidvalidity, uid in wanted:
            if folder_id in folders and folders[folder_id].uidvalidity == uidvalidity:
                by_folder.setdefault(folder_id, []).append(int(uid))
        for folder_id, uids in by_folder.items():
            state = folders[folder_id]
            client.select_folder(state.name, readonly=True)
            line = next((f for f in report.folders if f.name == state.name), None)
            size = self.config.imap.batch_size
            for start in range(0, len(uids), size):
                batch = uids[start : start + size]
                items = ["RFC822.SIZE"]
                if client.has_capability("X-GM-EXT-1"):
                    items.append("X-GM-MSGID")
                meta = fetch_headers(client, batch, items)
                bodies = self._bodies(client, batch, meta)
                with self.db.session() as session:
                    for uid in sorted(bodies):
                        gm = meta.get(uid, {}).get(b"X-GM-MSGID")
                        known = Scanned(set(), None, None, int(gm) if gm is not None else None)
                        accept_in(session, bodies[uid], self._arrival(state, uid, known))
                    session.execute(
                        delete(ScannedMessage).where(
                            ScannedMessage.folder_id == folder_id,
                            ScannedMessage.uidvalidity == state.uidvalidity,
                            ScannedMessage.uid.in_(batch),
                        )
                    )
                    folder = session.get_one(MailboxFolder, folder_id)
                    folder.matched += len(bodies)
                    folder.fetched += len(bodies)
                if line is not None:
                    line.matched += len(bodies)
                    line.fetched += len(bodies)
                if bodies:
                    self.stored()

    def _purge(self) -> None:
        """Forget indexed headers that fell out of the window."""
        since = utcnow() - timedelta(days=self.config.imap.window_days)
        with self.db.session() as session:
            session.execute(
                delete(ScannedMessage).where(
                    ScannedMessage.mailbox_id == self.mailbox_id, ScannedMessage.sent_at < since
                )
            )

    def _bodies(
        self,
        client: Any,
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

    def _header_items(self, client: Any) -> list[str]:
        items = [FETCH_HEADERS]
        if client.has_capability("X-GM-EXT-1"):
            items.append("X-GM-MSGID")
        return items

    def _key(self, state: MailboxFolder, uid: int, scanned: Scanned | None) -> str:
        if scanned is not None and scanned.gm_msgid is not None:
            return f"imap:{self.mailbox_id}:gm:{scanned.gm_msgid}"
        return source_key(self.mailbox_id, state.name, state.uidvalidity or 0, uid)

    def _arrival(self, state: MailboxFolder, uid: int, scanned: Scanned | None = None) -> Arrival:
        return Arrival(
            self.user_id,
            Source.IMAP,
            Keep.IF_MATCHED,
            source_key=self._key(state, uid, scanned),
            folder=state.name[:512],
            uidvalidity=state.uidvalidity,
            uid=uid,
            account_id=self.account_id,
        )

    def _update(self, state: MailboxFolder, **values: Any) -> None:
        with self.db.session() as session:
            folder = session.get_one(MailboxFolder, state.id)
            for key, value in values.items():
                setattr(folder, key, value)
                setattr(state, key, value)
            folder.updated_at = utcnow()


def _newest_contact_email(session: Session) -> int:
    """The highest contact address id so far: any address added later has a higher one.
    (SQLite may give a deleted highest id to the next row; a message missed that way
    is found by the completeness audit.)"""
    return int(session.scalar(select(func.max(ContactEmail.id))) or 0)


def source_key(mailbox_id: int, folder: str, uidvalidity: int, uid: int) -> str:
    """One sighting per message of a folder: mailbox, folder, UIDVALIDITY and UID."""
    digest = hashlib.sha256(folder.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"imap:{mailbox_id}:{digest}:{uidvalidity}:{uid}"


def _raw_headers(fetched: dict[int, dict[bytes, Any]]) -> dict[int, bytes]:
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
