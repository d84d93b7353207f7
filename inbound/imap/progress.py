"""Where a mailbox's sync stands, as a person reads it: one phase, with its figures.

    connecting          signing in (or waiting to: the imap role starts it shortly)
    listing_folders     signed in, finding INBOX and Sent
    importing_history   the initial sync: per folder scanned of total, matched,
                        fetched, and an estimate of the time left from its pace
    live                the history is in; new mail arrives as it comes
    reconnect_required  a person must act: `reason` (gateway.imap.reasons) and the
                        server's words
    stalled             the last attempt failed (`last_error`); it is retried with
                        back-off, nothing is lost meanwhile

`missing` is the last completeness audit's count of messages on the server that
involve a contact but were not stored (they are fetched when found).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.models import Mailbox, MailboxFolder, MailboxState, utcnow


def sync_status(mailbox: Mailbox, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    folders = [{**figures(f), "initial_sync_done": f.initial_done} for f in mailbox.folders]
    status: dict[str, Any] = {
        "mailbox_id": mailbox.id,
        "email": mailbox.email,
        "phase": _phase(mailbox),
        "reason": mailbox.reconnect_reason
        if mailbox.state == MailboxState.RECONNECT_REQUIRED.value
        else None,
        "last_error": mailbox.last_error,
        "last_sync_at": mailbox.last_sync_at.isoformat() if mailbox.last_sync_at else None,
        "folders": folders,
        "scanned": sum(f["scanned"] for f in folders),
        "total": sum(f["total"] for f in folders),
        "matched": sum(f["matched"] for f in folders),
        "fetched": sum(f["fetched"] for f in folders),
        "missing": sum(f["missing"] for f in folders),
        "estimate_seconds": _estimate(mailbox, now),
        "calendars": [
            {
                "name": c.name or "Calendar",
                "kind": c.kind,
                "events": c.events,
                "synced_at": c.synced_at.isoformat() if c.synced_at else None,
                "last_error": c.last_error,
            }
            for c in mailbox.calendars
        ],
    }
    return status


def figures(folder: MailboxFolder) -> dict[str, Any]:
    """One folder's counts: of its window, scanned, with a contact, fetched, and the
    last audit's missing."""
    return {
        "role": folder.role,
        "name": folder.name,
        "total": folder.total,
        "scanned": folder.scanned,
        "matched": folder.matched,
        "fetched": folder.fetched,
        "missing": folder.missing,
        "audited_at": folder.audited_at.isoformat() if folder.audited_at else None,
    }


def _phase(mailbox: Mailbox) -> str:
    if mailbox.state == MailboxState.RECONNECT_REQUIRED.value:
        return "reconnect_required"
    if mailbox.last_error:
        return "stalled"
    if not mailbox.folders:
        return mailbox.sync_phase or "connecting"
    if all(f.initial_done for f in mailbox.folders):
        return "live"
    return "importing_history"


def _estimate(mailbox: Mailbox, now: datetime) -> int | None:
    """Seconds left of the initial sync at the pace so far (None: done or unknown)."""
    running = [f for f in mailbox.folders if not f.initial_done]
    if not running:
        return None
    scanned = sum(f.scanned for f in mailbox.folders)
    left = sum(max(f.total - f.scanned, 0) for f in running)
    spent = (now - mailbox.created_at).total_seconds()
    if scanned <= 0 or spent <= 0:
        return None
    return round(left / (scanned / spent))
