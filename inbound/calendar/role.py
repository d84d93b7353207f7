"""The `calendar` role: every [calendar] interval, the calendars of each active
connected mailbox are synced (CalDAV, or Microsoft Graph for Microsoft mailboxes).

Failures follow the mailbox's states: refused credentials put the mailbox in
reconnect_required with the reason (inbound.imap.mailboxes.needs_reconnect, the
same as IMAP), anything else is noted on its calendars and tried again next time.
A calendar sync never touches the mail sync: each runs on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway import leases
from gateway.config import Config
from gateway.db import Database
from gateway.errors import ROUND_FAILURES, GatewayError
from gateway.imap.connection import AUTH, PROTOCOL, MailboxError
from gateway.imap.session import refreshed
from gateway.leases import Fence
from gateway.models import Calendar, Mailbox, MailboxState, utcnow
from gateway.oauth2 import TokenError, Tokens
from gateway.resolver import Resolver
from gateway.role import RoleContext, heartbeat
from gateway.vault import Vault
from inbound.calendar.caldav_sync import Access, sync_caldav
from inbound.calendar.entries import Tally
from inbound.calendar.graph_sync import sync_graph
from inbound.calendar.where import calendar_service, check_url
from inbound.imap.mailboxes import needs_reconnect

log = logging.getLogger(__name__)
LOOK_EVERY = 30.0  # seconds between looks for mailboxes due a sync
KIND = "calendar"  # the leases of mailboxes' calendar syncs
BATCH = 10  # mailboxes claimed at a time


@dataclass(frozen=True)
class CalendarReport:
    mailbox_id: int
    service: str
    tally: Tally


def sync_calendars(
    db: Database,
    config: Config,
    vault: Vault,
    resolver: Resolver,
    mailbox_id: int,
    fence: Fence | None = None,
) -> CalendarReport:
    """Sync one mailbox's calendars now. Refused credentials: reconnect_required.
    `fence` runs in the transaction of every write (the role's lease)."""
    with db.read() as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        email, username, provider = mailbox.email, mailbox.username, mailbox.provider
        auth, verify = mailbox.auth, mailbox.tls_verify
        plain = vault.decrypt(mailbox.credentials) if mailbox.credentials else ""
    service = calendar_service(mailbox, config, resolver)  # DNS: outside the transaction
    try:
        if service.kind == "graph":
            tokens = Tokens.from_json(plain)
            tally = sync_graph(
                db,
                config,
                mailbox_id,
                service.url,
                tokens,
                lambda t: _graph_token(db, config, vault, mailbox_id, provider, t),
                fence=fence,
            )
        else:
            if service.how == "preset":  # a discovered one was checked as it was found
                check_url(config, resolver, service.url)
            if auth == "oauth2":
                tally = _caldav_with_token(
                    db,
                    config,
                    vault,
                    mailbox_id,
                    provider,
                    service.url,
                    Tokens.from_json(plain),
                    fence,
                )
            else:
                access = Access(service.url, username or email, password=plain, verify=verify)
                tally = sync_caldav(db, config, mailbox_id, access, fence=fence)
    except MailboxError as exc:
        if exc.needs_person:
            needs_reconnect(db, mailbox_id, exc)
        _note(db, mailbox_id, str(exc))
        raise
    return CalendarReport(mailbox_id, service.kind, tally)


NOT_GRANTED = ("consent_required", "interaction_required")


def _graph_token(
    db: Database, config: Config, vault: Vault, mailbox_id: int, provider: str, tokens: Tokens
) -> Tokens:
    """A Graph access token from the mailbox's refresh token. A grant that never
    included the calendar (consent_required: connected before the gateway asked for
    Calendars.Read) is the calendar's problem, not the mailbox's: its mail goes on."""
    try:
        return refreshed(
            db, config, vault, mailbox_id, provider, tokens, config.calendar.graph_scope
        )
    except MailboxError as exc:
        cause = exc.__cause__
        if isinstance(cause, TokenError) and cause.code in NOT_GRANTED:
            raise MailboxError(
                PROTOCOL,
                "calendar access was not granted with this mailbox's sign-in: sign in with "
                f"Microsoft again to allow it ({cause})",
            ) from exc
        raise


def _caldav_with_token(
    db: Database,
    config: Config,
    vault: Vault,
    mailbox_id: int,
    provider: str,
    url: str,
    tokens: Tokens,
    fence: Fence | None = None,
) -> Tally:
    """CalDAV with the mailbox's OAuth2 access token (Google): refreshed first when it
    has expired, and once more when the server refuses it, as for IMAP."""
    if tokens.expired():
        tokens = refreshed(db, config, vault, mailbox_id, provider, tokens)
    try:
        access = Access(url, "", bearer=tokens.access_token)
        return sync_caldav(db, config, mailbox_id, access, fence=fence)
    except MailboxError as exc:
        if exc.kind != AUTH or not tokens.refresh_token:
            raise
    tokens = refreshed(db, config, vault, mailbox_id, provider, tokens)
    access = Access(url, "", bearer=tokens.access_token)
    return sync_caldav(db, config, mailbox_id, access, fence=fence)


def _note(db: Database, mailbox_id: int, error: str) -> None:
    with db.session() as session:
        session.execute(
            update(Calendar)
            .where(Calendar.mailbox_id == mailbox_id)
            .values(last_error=error[:2000])
        )


class CalendarRole:
    """Syncs the calendars of the active mailboxes whose turn it is. Any number of
    nodes may run it: each mailbox's sync is claimed (gateway.leases, kind
    "calendar"), renewed by a heartbeat while it runs, done once per [calendar]
    interval by whichever node claims it, and its writes are fenced."""

    def __init__(self, db: Database, config: Config, owner: str = "calendar") -> None:
        self.db = db
        self.config = config
        self.owner = owner
        self.held: dict[str, int] = {}  # mailbox id -> generation, being synced here

    async def start(self) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        if not self.config.calendar.enabled:
            await stop.wait()
            return
        beating = asyncio.ensure_future(heartbeat(stop, self.config.cluster.lease / 3, self.renew))
        try:
            while not stop.is_set():
                try:
                    await asyncio.to_thread(self.pass_once)
                except ROUND_FAILURES as exc:  # the database away for a moment: next time
                    log.warning("calendar: a pass stopped: %s", exc)
                with contextlib.suppress(TimeoutError):
                    wait = min(LOOK_EVERY, self.config.calendar.interval)
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            beating.cancel()

    def renew(self) -> None:
        """The heartbeat, every third of [cluster] lease: the syncs running here keep
        their leases."""
        held = dict(self.held)
        if not held:
            return
        try:
            kept = leases.renew(self.db, KIND, self.owner, held, self.config.cluster.lease)
        except ROUND_FAILURES as exc:
            log.warning("calendar: leases not renewed: %s", exc)
            return
        for key in set(held) - kept:
            log.warning("calendar: mailbox %s: its lease was lost; its sync stops", key)

    def pass_once(self) -> int:
        """Claim the active mailboxes whose calendars are due, sync them one after
        another, and set each one's next turn [calendar] interval later."""
        with self.db.read() as session:
            ids = session.scalars(
                select(Mailbox.id).where(Mailbox.state == MailboxState.ACTIVE.value)
            ).all()
        lease = self.config.cluster.lease
        claimed = leases.claim_due(self.db, KIND, self.owner, (str(i) for i in ids), BATCH, lease)
        if not claimed:
            return 0
        vault = Vault.load(self.config.secret_key_file)
        resolver = Resolver(self.config.dns)
        for key, generation in claimed.items():
            self.held[key] = generation
            try:
                self._sync(vault, resolver, int(key), generation)
            finally:
                del self.held[key]
                due = utcnow() + timedelta(seconds=self.config.calendar.interval)
                leases.finish(self.db, KIND, self.owner, key, generation, due)
        return len(claimed)

    def _sync(self, vault: Vault, resolver: Resolver, mailbox_id: int, generation: int) -> None:
        def fenced(session: Session) -> None:
            leases.fence(session, KIND, str(mailbox_id), self.owner, generation)

        try:
            report = sync_calendars(self.db, self.config, vault, resolver, mailbox_id, fenced)
        except GatewayError as exc:
            log.warning("calendar: mailbox %s not synced: %s", mailbox_id, exc)
            return
        except Exception:  # a server's answer the libraries choke on: the next turn
            log.exception("calendar: mailbox %s not synced", mailbox_id)
            return
        if report.tally.changed or report.tally.removed:
            log.info(
                "calendar: mailbox %s (%s): %s changed, %s removed, %s meetings",
                mailbox_id,
                report.service,
                report.tally.changed,
                report.tally.removed,
                report.tally.meetings,
            )


def build(ctx: RoleContext) -> CalendarRole:
    """The `calendar` role (gateway.registry)."""
    return CalendarRole(ctx.db, ctx.config, ctx.owner)
