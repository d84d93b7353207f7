"""The `imap` role: every active mailbox synced at once, each in a thread of its own.

    ImapRole (event loop)        every few seconds: start a MailboxRunner for each
                                 active mailbox, stop those removed or needing a person
    MailboxRunner (a thread)     connect -> sync pass -> wait for mail -> sync pass ...
        wait for mail            IDLE on INBOX where offered (DONE and again before
                                 [imap] idle_refresh, and at least every poll_interval
                                 so that Sent is looked at), else poll_interval
        network error, BYE       reconnect after 1 s, 2 s, 4 s ... up to backoff_max,
                                 with jitter; resume from the checkpoints
        credentials refused      reconnect_required (with the reason, an event); stop

imapclient is blocking, so each mailbox holds one thread ([imap] max_connections
of them at most); the threads watch a stop flag at least once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imapclient.exceptions import IMAPClientError
from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.imap.client import ImapClient
from gateway.imap.connection import MailboxError, close, is_throttling
from gateway.imap.session import open_session, settings_of
from gateway.models import FolderRole, Mailbox, MailboxFolder, MailboxState, ScannedMessage
from gateway.pipeline import Pipeline
from gateway.providers import preset
from gateway.role import RoleContext
from gateway.vault import Vault
from inbound.imap.mailboxes import (
    get_mailbox,
    needs_reconnect,
    record_error,
    set_phase,
    take_sync_requests,
)
from inbound.imap.sync import AuditFolder, MailboxSync, SyncReport

log = logging.getLogger(__name__)

RESCAN = 5.0  # seconds between looks for added, removed or reconnected mailboxes
NETWORK_ERRORS = (OSError, socket.timeout, ssl.SSLError, imaplib.IMAP4.error, IMAPClientError)


def sync_now(db: Database, config: Config, vault: Vault, email: str) -> SyncReport:
    """One sync pass in the foreground (`gateway mailbox sync`), then the pipeline."""
    with db.read() as session:
        mailbox_id = get_mailbox(session, config, email).id
    try:
        client = open_session(db, config, vault, mailbox_id)
    except MailboxError as exc:
        if exc.needs_person:
            needs_reconnect(db, mailbox_id, exc)
        raise
    try:
        report = MailboxSync(db, config, mailbox_id).run(client)
    finally:
        close(client)
    Pipeline(db, config).run_pending()
    return report


def audit_now(
    db: Database, config: Config, vault: Vault, email: str, *, repair: bool = True
) -> list[AuditFolder]:
    """`gateway mailbox audit`: the completeness audit in the foreground, then the pipeline."""
    with db.read() as session:
        mailbox_id = get_mailbox(session, config, email).id
    client = open_session(db, config, vault, mailbox_id)
    try:
        found = MailboxSync(db, config, mailbox_id).audit(client, repair=repair)
    finally:
        close(client)
    Pipeline(db, config).run_pending()
    return found


class MailboxRunner:
    """Keeps one mailbox in sync until stopped or until it needs a person."""

    def __init__(
        self,
        db: Database,
        config: Config,
        vault: Vault,
        mailbox_id: int,
        stored: Callable[[], None],
    ) -> None:
        self.db, self.config, self.vault = db, config, vault
        self.mailbox_id = mailbox_id
        self.stored = stored
        self.stopping = threading.Event()
        self.nudged = threading.Event()  # work waits (a contact's older mail): sync now
        self.audited = time.monotonic()
        self.idling = False  # in IDLE now (for status and benchmarks)
        self.backoff = 1.0

    def stop(self) -> None:
        self.stopping.set()

    def nudge(self) -> None:
        self.nudged.set()

    def _waiting(self) -> bool:
        return not (self.stopping.is_set() or self.nudged.is_set())

    def run(self) -> None:
        """The thread's body: returns when stopped or when a person must act."""
        while not self.stopping.is_set():
            try:
                self._session()
                return
            except MailboxError as exc:
                if exc.needs_person:
                    log.warning("mailbox %s: %s; needs a person", self.mailbox_id, exc)
                    needs_reconnect(self.db, self.mailbox_id, exc)
                    return
                self._failed(str(exc), at_least=exc.retry_after)
            except NETWORK_ERRORS as exc:
                text = f"{type(exc).__name__}: {exc}"
                if is_throttling(text):  # e.g. NO [LIMIT] on a command: back off longer
                    self.backoff = max(self.backoff, min(60.0, self.config.imap.backoff_max))
                self._failed(text)
            except Exception as exc:  # a bug or a server quirk: keep the others going
                log.exception("mailbox %s: sync failed", self.mailbox_id)
                self._failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, reason: str, at_least: float | None = None) -> None:
        record_error(self.db, self.mailbox_id, reason)
        delay = random.uniform(0.5, 1.0) * self.backoff  # jitter
        if at_least is not None:
            delay = max(delay, at_least)
        log.warning("mailbox %s: %s; reconnecting in %.1f s", self.mailbox_id, reason, delay)
        self.backoff = min(self.backoff * 2, self.config.imap.backoff_max)
        self.stopping.wait(delay)

    def _session(self) -> None:
        with self.db.read() as session:
            mailbox = session.get(Mailbox, self.mailbox_id)
            if mailbox is None or mailbox.state != MailboxState.ACTIVE.value:
                return
            settings = settings_of(mailbox)
        set_phase(self.db, self.mailbox_id, "connecting")
        client = open_session(self.db, self.config, self.vault, self.mailbox_id)
        set_phase(self.db, self.mailbox_id, "listing_folders")
        try:
            sync = MailboxSync(self.db, self.config, self.mailbox_id, stored=self.stored)
            idle = preset(settings.provider).idle and client.has_capability("IDLE")
            while not self.stopping.is_set():
                self.nudged.clear()
                sync.run(client)
                if self._audit_due():
                    sync.audit(client)
                record_error(self.db, self.mailbox_id, None)
                self.backoff = 1.0
                self._wait_for_mail(client, idle)
        finally:
            close(client)

    def _inbox_checkpoint(self) -> int:
        with self.db.read() as session:
            last = session.scalar(
                select(MailboxFolder.last_uid).where(
                    MailboxFolder.mailbox_id == self.mailbox_id,
                    MailboxFolder.role == FolderRole.INBOX.value,
                )
            )
        return int(last or 0)

    def _audit_due(self) -> bool:
        """Every [imap] audit_interval of running (the first one interval after start)."""
        interval = self.config.imap.audit_interval
        if not interval or time.monotonic() - self.audited < interval:
            return False
        self.audited = time.monotonic()
        return True

    def _wait_for_mail(self, client: ImapClient, idle: bool) -> None:
        limit = min(self.config.imap.idle_refresh, self.config.imap.poll_interval)
        started = time.monotonic()
        if not idle:
            limit = self.config.imap.poll_interval
            while self._waiting() and time.monotonic() - started < limit:
                self.nudged.wait(min(1.0, limit - (time.monotonic() - started)))
            return
        info = client.select_folder("INBOX", readonly=True)
        # Mail that arrived between the sync pass and this SELECT is already counted
        # in it: IDLE would never announce it. Look again at once instead.
        if int(info.get(b"UIDNEXT") or 0) - 1 > self._inbox_checkpoint():
            return
        client.idle()
        self.idling = True
        try:
            while self._waiting() and time.monotonic() - started < limit:
                responses = client.idle_check(timeout=1.0)
                if any(_news(r) for r in responses):
                    return
        finally:
            self.idling = False
            client.idle_done()


def _news(response: Any) -> bool:
    """An untagged response that means mail arrived (EXISTS) or left (EXPUNGE)."""
    return (
        isinstance(response, tuple)
        and len(response) >= 2
        and response[1] in (b"EXISTS", b"RECENT", b"EXPUNGE")
    ) or (isinstance(response, tuple) and response[:1] == (b"BYE",))


class ImapRole:
    """Runs a MailboxRunner for every active mailbox (the `imap` role of `gateway serve`)."""

    def __init__(self, db: Database, config: Config, wake: Callable[[], None]) -> None:
        self.db, self.config = db, config
        self.wake = wake
        self.runners: dict[int, tuple[MailboxRunner, asyncio.Future[None]]] = {}
        self.over_limit = False

    async def start(self) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(
            max_workers=self.config.imap.max_connections, thread_name_prefix="imap"
        )

        def stored() -> None:  # called from the runners' threads
            loop.call_soon_threadsafe(self.wake)

        try:
            vault: Vault | None = None
            while not stop.is_set():
                active = await asyncio.to_thread(self._active)
                limit = self.config.imap.max_connections
                if len(active) > limit and not self.over_limit:
                    log.warning(
                        "%s active mailboxes but [imap] max_connections is %s: the rest wait "
                        "until one stops",
                        len(active),
                        limit,
                    )
                self.over_limit = len(active) > limit
                if active and vault is None:
                    vault = Vault.load(self.config.secret_key_file)
                for mailbox_id in list(self.runners):
                    runner, future = self.runners[mailbox_id]
                    if mailbox_id not in active or future.done():
                        runner.stop()
                        if future.done():
                            del self.runners[mailbox_id]
                nudge = await asyncio.to_thread(self._with_wanted_mail)
                nudge |= await asyncio.to_thread(take_sync_requests, self.db)
                for mailbox_id in nudge:
                    if mailbox_id in self.runners:
                        self.runners[mailbox_id][0].nudge()
                for mailbox_id in active:
                    if mailbox_id not in self.runners and vault is not None:
                        runner = MailboxRunner(self.db, self.config, vault, mailbox_id, stored)
                        future = loop.run_in_executor(executor, runner.run)
                        self.runners[mailbox_id] = (runner, future)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RESCAN)
        finally:
            for runner, _ in self.runners.values():
                runner.stop()
            futures = [future for _, future in self.runners.values()]
            if futures:
                await asyncio.wait(futures, timeout=self.config.imap.timeout + 5)
            executor.shutdown(wait=False, cancel_futures=True)

    def _with_wanted_mail(self) -> set[int]:
        with self.db.read() as session:
            return set(
                session.scalars(
                    select(ScannedMessage.mailbox_id).where(ScannedMessage.wanted).distinct()
                )
            )

    def _active(self) -> set[int]:
        with self.db.read() as session:
            return set(
                session.scalars(
                    select(Mailbox.id).where(Mailbox.state == MailboxState.ACTIVE.value)
                )
            )


def build(ctx: RoleContext) -> ImapRole:
    """The `imap` role (gateway.registry): stored mail wakes the pipeline."""
    return ImapRole(ctx.db, ctx.config, ctx.stored)
