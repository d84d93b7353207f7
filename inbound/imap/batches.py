"""A folder's batches of UIDs, read in overlapping stages:

    batch n+1: FETCH headers asked for  (the server reads while we work)
    batch n:   headers parsed (a worker process) -> matched -> bodies fetched
    batch n-1: written (a writer thread): its messages, header index, checkpoint

Writes stay in order, one at a time: a batch is handed to the writer only once the
one before is committed, and a failed write stops the folder there, its checkpoint
never passing it. The checkpoint moves only in the transaction that stores the
batch's messages, so a crash or a dropped connection redoes at most one batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from gateway.imap.client import ImapClient
from gateway.imap.rawfetch import Pipeline
from gateway.models import utcnow
from gateway.models.mailboxes import MailboxFolder
from gateway.parsing import HeaderScan
from gateway.store import accept_batch_in
from inbound.imap import scanning
from inbound.imap.header_index import index
from inbound.imap.reports import FolderReport
from inbound.imap.scan import (
    Scanned,
    bodies,
    contact_emails_after,
    header_items,
    matching,
    newest_contact_email,
    raw_headers,
    scanned,
)
from inbound.imap.target import Target

Batch = tuple[list[int], dict[str, Any]]  # UIDs, and the checkpoint once they are stored


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


def run_batches(
    target: Target,
    client: ImapClient,
    state: MailboxFolder,
    batches: Sequence[Batch],
    report: FolderReport,
) -> None:
    """Each batch in order, in the overlapping stages above."""
    pipeline = Pipeline(client)
    try:
        _pipelined(target, client, state, batches, report, pipeline)
    except BaseException:
        # A write failed with the next batch's headers asked for: read them off the
        # connection (it stays usable), then report the failure.
        with contextlib.suppress(Exception):
            pipeline.drain()
        raise


def _pipelined(
    target: Target,
    client: ImapClient,
    state: MailboxFolder,
    batches: Sequence[Batch],
    report: FolderReport,
    pipeline: Pipeline,
) -> None:
    items = header_items(client)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-write") as writer:
        ahead: _Scanning | None = None
        writing: Future[None] | None = None
        asked = pipeline.send(batches[0][0], items) if batches else None
        for n, (uids, checkpoint) in enumerate(batches):
            assert asked is not None
            headers = pipeline.result(asked)
            # The server reads the next batch's headers while this one is handled.
            asked = pipeline.send(batches[n + 1][0], items) if n + 1 < len(batches) else None
            raw = raw_headers(headers)
            current = _Scanning(uids, checkpoint, headers, raw, scanning.submit(raw, target.case))
            if ahead is not None:
                writing = _batch(target, client, state, ahead, report, writer, writing, pipeline)
            ahead = current
        if ahead is not None:
            writing = _batch(target, client, state, ahead, report, writer, writing, pipeline)
        if writing is not None:
            writing.result()


def _batch(
    target: Target,
    client: ImapClient,
    state: MailboxFolder,
    work: _Scanning,
    report: FolderReport,
    writer: ThreadPoolExecutor,
    previous: Future[None] | None,
    pipeline: Pipeline,
) -> Future[None]:
    """Match the batch and fetch its bodies here; its write goes to `writer` once
    the write of the batch before (`previous`) is committed."""
    scans = scanning.result(work.scans, work.raw, target.case)
    found = scanned(target.db, target.config, target.account_id, work.headers, work.raw, scans)
    with target.db.read() as session:
        mark = newest_contact_email(session)
        wanted = matching(session, target.account_id, found)
        held = target.held(session, state, wanted, found)
    fetched = bodies(client, [u for u in wanted if u not in held], work.headers, pipeline)
    if previous is not None:
        previous.result()  # raises what that write raised: nothing after it is written
    matched = _Matched(found, wanted, held, fetched, mark)
    return writer.submit(_write, target, state, work, matched, report)


def _write(
    target: Target, state: MailboxFolder, work: _Scanning, found: _Matched, report: FolderReport
) -> None:
    """One transaction: the batch's messages, its header index and the checkpoint."""
    scanned, wanted, held, fetched = found.scanned, found.wanted, found.held, found.bodies
    with target.session() as session:
        accept_batch_in(
            session,
            [
                (fetched[uid], target.arrival(state, uid, scanned.get(uid)))
                for uid in sorted(fetched)
            ],
        )
        rest = {
            u: s for u, s in scanned.items() if u not in fetched and u not in held and s.addresses
        }
        # A contact address added since the look above (its want_scanned() ran
        # before these rows existed): mark its messages wanted here, and those
        # matched but not fetched (gone meanwhile) too; the next pass fetches them.
        added = contact_emails_after(session, target.account_id, found.mark)
        matched = set(wanted)
        again = {u for u, s in rest.items() if u in matched or s.addresses & added}
        index(target, session, state, rest, again)
        folder = session.get_one(MailboxFolder, state.id)
        folder.scanned += len(work.uids)
        folder.matched += len(wanted)
        folder.fetched += len(fetched)
        for key, value in work.checkpoint.items():
            setattr(folder, key, value)
            setattr(state, key, value)
        folder.updated_at = utcnow()
    report.scanned += len(work.uids)
    report.matched += len(wanted)
    report.fetched += len(fetched)
    if fetched:
        target.stored()
