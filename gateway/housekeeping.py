"""The `housekeeping` role's periodic jobs (gateway.periodic: one node per period).

    cleanup     rows that outlived their use: sign-in sessions ended or too old,
                sign-in and submission AUTH failures past their windows,
                idempotency keys past their day, dropbox refusals past their week,
                the leases of removed mailboxes and the announcements of nodes
                gone for a day
    retention   finished records older than [housekeeping] keep_days: webhook
                deliveries delivered or failed, events fanned out with none of
                their deliveries left, and the delivery queue's finished messages
                (their bytes too, unless a stored message still shows them)

Each deletes in batches of BATCH rows, one transaction each, fenced by the job's
lease; nothing a user sees on a contact's timeline is ever deleted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.orm import InstrumentedAttribute

from gateway import idempotency, refusals
from gateway.config import Config
from gateway.db import Database
from gateway.errors import ROUND_FAILURES
from gateway.leases import Fence
from gateway.models import (
    DeliveryState,
    DropboxRefusal,
    Event,
    IdempotencyKey,
    Lease,
    Mailbox,
    Message,
    OutboundMessage,
    OutboundRecipient,
    RawMessage,
    Sighting,
    SignInFailure,
    WebhookDelivery,
    WebhookState,
    utcnow,
)
from gateway.periodic import Job, run_due
from gateway.role import RoleContext
from gateway.web_sessions import forget_old_sessions

log = logging.getLogger(__name__)
BATCH = 500
LOOK_EVERY = 60.0  # seconds between looks for a due job
MAILBOX_LEASES = ("imap", "calendar", "audit")  # kinds keyed by a mailbox id
GONE_NODES = timedelta(days=1)
FINISHED = (
    DeliveryState.SENT.value,
    DeliveryState.BOUNCED.value,
    DeliveryState.FAILED.value,
    DeliveryState.CANCELLED.value,
)


def cleanup(db: Database, config: Config, fence: Fence) -> int:
    """Delete what outlived its use; how many rows."""
    now = utcnow()
    web = config.web
    with db.session() as session:
        fence(session)
        sessions = forget_old_sessions(session, web)
    return sessions + sum(
        (
            _delete_batches(
                db,
                fence,
                SignInFailure.id,
                SignInFailure.at < now - timedelta(seconds=_failures_kept(config)),
            ),
            _delete_batches(
                db, fence, IdempotencyKey.id, IdempotencyKey.created_at <= now - idempotency.KEEP
            ),
            _delete_batches(
                db, fence, DropboxRefusal.id, DropboxRefusal.refused_at < now - refusals.KEEP
            ),
            _forget_leases(db, fence, now),
        )
    )


def _failures_kept(config: Config) -> float:
    """Sign-in failures count over [web] sign_in_window, the submission port's over
    [submission] auth_failure_window: kept for the longer."""
    return max(config.web.sign_in_window, config.submission.auth_failure_window)


def _forget_leases(db: Database, fence: Fence, now: datetime) -> int:
    """The free leases of mailboxes that were removed, and the announcements of nodes
    that have not run the role for a day."""
    with db.session() as session:
        fence(session)
        mailboxes = {str(m) for m in session.scalars(select(Mailbox.id))}
        free = (Lease.expires_at.is_(None)) | (Lease.expires_at < now)
        found = session.execute(
            select(Lease.kind, Lease.key).where(Lease.kind.in_(MAILBOX_LEASES), free)
        ).all()
        orphans = [(kind, key) for kind, key in found if key not in mailboxes]
        for kind, key in orphans:
            session.execute(delete(Lease).where(Lease.kind == kind, Lease.key == key, free))
        gone = session.execute(
            delete(Lease).where(Lease.kind.like("%:nodes"), Lease.expires_at < now - GONE_NODES)
        )
        return len(orphans) + int(getattr(gone, "rowcount", 0) or 0)


def retention(db: Database, config: Config, fence: Fence) -> int:
    """Delete the finished records older than [housekeeping] keep_days; how many rows."""
    days = config.housekeeping.keep_days
    if not days:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    finished_hooks = WebhookDelivery.state.in_(
        (WebhookState.DELIVERED.value, WebhookState.FAILED.value)
    ) & (WebhookDelivery.updated_at < cutoff)
    old_events = (
        Event.dispatched_at.is_not(None)
        & (Event.dispatched_at < cutoff)
        & ~exists().where(WebhookDelivery.event_id == Event.id)
    )
    return (
        _delete_batches(db, fence, WebhookDelivery.id, finished_hooks)
        + _delete_batches(db, fence, Event.id, old_events)
        + _forget_finished_mail(db, fence, cutoff)
    )


def _forget_finished_mail(db: Database, fence: Fence, cutoff: datetime) -> int:
    """The queue's finished messages older than `cutoff`, with their recipients, and
    their bytes when nothing else (a stored message, a sighting) needs them."""
    done = 0
    old = OutboundMessage.state.in_(FINISHED) & (OutboundMessage.updated_at < cutoff)
    while True:
        with db.session() as session:
            fence(session)
            rows = session.execute(
                select(OutboundMessage.id, OutboundMessage.raw_message_id)
                .where(old)
                .order_by(OutboundMessage.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return done
            ids = [r.id for r in rows]
            raws = {r.raw_message_id for r in rows}
            session.execute(delete(OutboundRecipient).where(OutboundRecipient.message_id.in_(ids)))
            session.execute(delete(OutboundMessage).where(OutboundMessage.id.in_(ids)))
            session.execute(
                delete(RawMessage).where(
                    RawMessage.id.in_(raws),
                    ~exists().where(Sighting.raw_message_id == RawMessage.id),
                    ~exists().where(Message.raw_message_id == RawMessage.id),
                    ~exists().where(OutboundMessage.raw_message_id == RawMessage.id),
                )
            )
            done += len(ids)


def _delete_batches(
    db: Database, fence: Fence, key: InstrumentedAttribute[int], where: ColumnElement[bool]
) -> int:
    """Delete the rows of `key`'s table that match, BATCH at a time; how many."""
    done = 0
    table: Any = key.class_
    while True:
        with db.session() as session:
            fence(session)
            ids = list(session.scalars(select(key).where(where).order_by(key).limit(BATCH)))
            if not ids:
                return done
            session.execute(delete(table).where(key.in_(ids)))
            done += len(ids)


JOBS = (
    Job("cleanup", lambda config: config.housekeeping.interval, cleanup),
    Job("retention", lambda config: config.housekeeping.interval, retention),
)


class HousekeepingRole:
    """Looks for a due job every minute (or sooner: [housekeeping] interval) and runs
    those this node claims."""

    def __init__(self, db: Database, config: Config, owner: str) -> None:
        self.db, self.config, self.owner = db, config, owner

    async def start(self) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await asyncio.to_thread(run_due, self.db, self.config, self.owner, JOBS)
            except ROUND_FAILURES as exc:  # the database away for a moment: next time
                log.warning("housekeeping: jobs not looked at: %s", exc)
                done = {}
            for name, count in done.items():
                if count:
                    log.info("housekeeping: %s removed %s row(s)", name, count)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), min(LOOK_EVERY, self.config.housekeeping.interval)
                )


def build(ctx: RoleContext) -> HousekeepingRole:
    """The `housekeeping` role (gateway.registry)."""
    return HousekeepingRole(ctx.db, ctx.config, ctx.owner)
