"""The completeness audit: the server's census of each synced folder (within the
window) compared with what was stored; what involves a contact and is missing is
counted (gateway_mailbox_missing_messages) and, with repair, fetched now."""

from __future__ import annotations

import logging

from sqlalchemy import select

from gateway.imap.client import ImapClient
from gateway.imap.rawfetch import fetch_headers
from gateway.models import utcnow
from gateway.models.mailboxes import MailboxFolder
from gateway.store import accept_in
from inbound.imap.reports import AuditFolder
from inbound.imap.scan import bodies, header_items, matching, scan, window
from inbound.imap.target import Target

log = logging.getLogger(__name__)


def audit(target: Target, client: ImapClient, *, repair: bool = True) -> list[AuditFolder]:
    out: list[AuditFolder] = []
    if target.sync_mode != "two_way":
        return out
    with target.db.read() as session:
        folders = list(
            session.scalars(
                select(MailboxFolder).where(MailboxFolder.mailbox_id == target.mailbox_id)
            )
        )
        for folder in folders:
            session.expunge(folder)
    for state in folders:
        info = client.select_folder(state.name, readonly=True)
        if int(info[b"UIDVALIDITY"]) != state.uidvalidity:
            continue  # the next sync pass reads this folder again anyway
        out.append(_audit_folder(target, client, state, repair))
    return out


def _audit_folder(
    target: Target, client: ImapClient, state: MailboxFolder, repair: bool
) -> AuditFolder:
    line = AuditFolder(state.role, state.name)
    uids = sorted(
        u for u in window(client, target.config, target.mailbox_id, state) if u <= state.last_uid
    )
    line.on_server = len(uids)
    size = target.config.imap.batch_size
    for start in range(0, len(uids), size):
        _audit_batch(target, client, state, uids[start : start + size], line, repair)
    if line.missing:
        log.warning(
            "mailbox %s: audit of %r found %s message(s) involving contacts that were "
            "never stored (%s fetched now)",
            target.mailbox_id,
            state.name,
            line.missing,
            line.repaired,
        )
    with target.session() as session:
        folder = session.get_one(MailboxFolder, state.id)
        folder.missing = line.missing - line.repaired
        folder.audited_at = utcnow()
    return line


def _audit_batch(
    target: Target,
    client: ImapClient,
    state: MailboxFolder,
    batch: list[int],
    line: AuditFolder,
    repair: bool,
) -> None:
    headers = fetch_headers(client, batch, header_items(client))
    scanned = scan(target.db, target.config, target.account_id, headers)
    with target.db.read() as session:
        involved = matching(session, target.account_id, scanned)
        have = target.held(session, state, involved, scanned)
    missing = [uid for uid in involved if uid not in have]
    line.involving_contacts += len(involved)
    line.missing += len(missing)
    if not (repair and missing):
        return
    found = bodies(client, missing, headers)
    with target.session() as session:
        for uid in sorted(found):
            accept_in(session, found[uid], target.arrival(state, uid, scanned.get(uid)))
        folder = session.get_one(MailboxFolder, state.id)
        folder.fetched += len(found)
    line.repaired += len(found)
    if found:
        target.stored()
