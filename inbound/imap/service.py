"""The `imap` role: every active mailbox synced at once, each in a thread of its own.

    ImapRole (event loop)        every few seconds: renew the leases of the mailboxes
                                 it syncs, claim its share of the others (a lease in
                                 the database: any number of nodes run the role, each
                                 mailbox synced by one at a time), start a MailboxRunner
                                 for each, stop those removed, needing a person, lost,
                                 or handed back to even the load
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
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from imapclient.exceptions import IMAPClientError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import leases
from gateway.config import Config
from gateway.db import Database
from gateway.errors import ROUND_FAILURES, Conflict, GatewayError
from gateway.imap.client import ImapClient
from gateway.imap.connection import MailboxError, close, is_throttling
from gateway.imap.session import open_session, settings_of
from gateway.leases import Fence, LeaseLost
from gateway.models import (
    FolderRole,
    Mailbox,
    MailboxFolder,
    MailboxState,
    ScannedMessage,
    utcnow,
)
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
KIND = "imap"  # the leases of mailboxes' IMAP sync
HAND_BACK = 2  # a node over its share hands back 1/HAND_BACK of the excess a pass
AUDIT = "audit"  # when each mailbox's completeness audit is due
NETWORK_ERRORS = (OSError, socket.timeout, ssl.SSLError, imaplib.IMAP4.error, IMAPClientError)


def sync_now(db: Database, config: Config, vault: Vault, email: str) -> SyncReport:
    """One sync pass in the foreground (`gateway mailbox sync`), then the pipeline."""
    with db.read() as session:
        mailbox_id = get_mailbox(session, config, email).id
    with _foreground(db, config, email, mailbox_id) as fence:
        try:
            client = open_session(db, config, vault, mailbox_id)
        except MailboxError as exc:
            if exc.needs_person:
                needs_reconnect(db, mailbox_id, exc, fence)
            raise
        try:
            report = MailboxSync(db, config, mailbox_id, fence=fence).run(client)
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
    with _foreground(db, config, email, mailbox_id) as fence:
        client = open_session(db, config, vault, mailbox_id)
        try:
            found = MailboxSync(db, config, mailbox_id, fence=fence).audit(client, repair=repair)
        finally:
            close(client)
    Pipeline(db, config).run_pending()
    return found


@contextlib.contextmanager
def _foreground(db: Database, config: Config, email: str, mailbox_id: int) -> Iterator[Fence]:
    """The mailbox's lease for a command in the foreground, as a node's runner holds
    it (its writes fenced, each moving it on), given back at the end: a mailbox is
    never synced twice at once. Conflict when a node syncs it now."""
    holder = f"command/{socket.gethostname()}/{os.getpid()}"
    key, lease = str(mailbox_id), config.cluster.lease
    held = leases.claim_due(db, KIND, holder, [key], 1, lease)
    if key not in held:
        raise Conflict(
            f"{email} is being synced by {leases.holder_of(db, KIND, key) or 'a node'} now; "
            "that node syncs it on its own (the mailboxes page's Sync now asks it to at once)"
        )
    try:
        yield leases.fencing(KIND, key, holder, held[key], extend=lease)
    finally:
        with contextlib.suppress(GatewayError):
            leases.finish(db, KIND, holder, key, held[key], utcnow())


class MailboxRunner:
    """Keeps one mailbox in sync until stopped or until it needs a person."""

    def __init__(
        self,
        db: Database,
        config: Config,
        vault: Vault,
        mailbox_id: int,
        stored: Callable[[], None],
        fence: Fence | None = None,
        owner: str = KIND,
        until: Callable[[], float] | None = None,
    ) -> None:
        self.db, self.config, self.vault = db, config, vault
        self.mailbox_id = mailbox_id
        self.stored = stored
        # The role's lease of the mailbox: every write checks it (and, first, that it
        # has not lapsed by this node's clock: `until`, a time.monotonic() deadline).
        self.lease_fence = fence
        self.until = until
        self.fence: Fence | None = self._fenced if fence is not None else None
        self.owner = owner  # who holds that lease (and takes the audit's)
        self.stopping = threading.Event()
        self.nudged = threading.Event()  # work waits (a contact's older mail): sync now
        self.idling = False  # in IDLE now (for status and benchmarks)
        self.backoff = 1.0

    def stop(self) -> None:
        self.stopping.set()

    def _still_held(self) -> None:
        """LeaseLost once the lease may have run out: the role could not renew it in
        time (the database away), so another node may take the mailbox over soon.
        The session ends before then, so no two nodes ever sync it at once."""
        if self.until is not None and time.monotonic() >= self.until():
            raise LeaseLost(f"the lease of mailbox {self.mailbox_id} was not renewed in time")

    def _fenced(self, session: Session) -> None:
        self._still_held()
        if self.lease_fence is not None:
            self.lease_fence(session)

    def nudge(self) -> None:
        self.nudged.set()

    def _waiting(self) -> bool:
        if self.until is not None and time.monotonic() >= self.until():
            return False  # the session loop then stops (_still_held)
        return not (self.stopping.is_set() or self.nudged.is_set())

    def run(self) -> None:
        """The thread's body: returns when stopped or when a person must act."""
        while not self.stopping.is_set():
            try:
                self._session()
                return
            except LeaseLost as exc:
                log.warning("mailbox %s: %s; stopping here", self.mailbox_id, exc)
                return
            except MailboxError as exc:
                if exc.needs_person:
                    log.warning("mailbox %s: %s; needs a person", self.mailbox_id, exc)
                    with contextlib.suppress(LeaseLost):  # then its node will say
                        needs_reconnect(self.db, self.mailbox_id, exc, self.fence)
                    return
                self._failed(str(exc), at_least=exc.retry_after)
            except NETWORK_ERRORS as exc:
                text = f"{type(exc).__name__}: {exc}"
                if is_throttling(text):  # e.g. NO [LIMIT] on a command: back off longer
                    self.backoff = max(self.backoff, min(60.0, self.config.imap.backoff_max))
                self._failed(text)
            except ROUND_FAILURES as exc:  # the database away for a moment
                self._failed(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug or a server quirk: keep the others going
                log.exception("mailbox %s: sync failed", self.mailbox_id)
                self._failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, reason: str, at_least: float | None = None) -> None:
        try:
            record_error(self.db, self.mailbox_id, reason, self.fence)
        except LeaseLost:  # another node syncs it now: this runner is done
            self.stopping.set()
            return
        except ROUND_FAILURES as exc:  # the database away too: try again after the pause
            log.warning("mailbox %s: the error was not recorded: %s", self.mailbox_id, exc)
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
        set_phase(self.db, self.mailbox_id, "connecting", self.fence)
        client = open_session(self.db, self.config, self.vault, self.mailbox_id)
        try:  # from here on, whatever fails, the session is logged out
            set_phase(self.db, self.mailbox_id, "listing_folders", self.fence)
            sync = MailboxSync(
                self.db, self.config, self.mailbox_id, stored=self.stored, fence=self.fence
            )
            idle = preset(settings.provider).idle and client.has_capability("IDLE")
            while not self.stopping.is_set():
                self._still_held()
                self.nudged.clear()
                sync.run(client)
                self._audit_if_due(sync, client)
                record_error(self.db, self.mailbox_id, None, self.fence)
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

    def _audit_if_due(self, sync: MailboxSync, client: ImapClient) -> None:
        """The completeness audit, every [imap] audit_interval (the first one interval
        after the mailbox is first synced). When it is due lives in the database (a
        lease of kind "audit"), so a mailbox that moves to another node, or a node
        that restarts, keeps the schedule: once per interval, whoever syncs it."""
        interval = self.config.imap.audit_interval
        if not interval:
            return
        key, lease = str(self.mailbox_id), self.config.cluster.lease
        first = utcnow() + timedelta(seconds=interval)
        held = leases.claim_due(self.db, AUDIT, self.owner, [key], 1, lease, first_due=first)
        if key not in held:
            return
        sync.audit(client)  # failing, its lease runs out and the audit is due again
        due = utcnow() + timedelta(seconds=interval)
        leases.finish(self.db, AUDIT, self.owner, key, held[key], due)

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
    """Runs a MailboxRunner for each mailbox this node holds the lease of (the `imap`
    role of `gateway serve`). The leases (gateway.leases, kind "imap") are renewed
    every pass; a node takes about its share of the active mailboxes (their number
    over the nodes holding leases), hands back half of the excess a pass while
    it holds more, so a node that joins gets its share gradually, and gives all back
    when it stops. A runner's writes are fenced by its lease: one that lost it stops,
    unwritten."""

    def __init__(
        self, db: Database, config: Config, wake: Callable[[], None], owner: str = "imap"
    ) -> None:
        self.db, self.config = db, config
        self.wake = wake
        self.owner = owner
        self.runners: dict[int, tuple[MailboxRunner, asyncio.Future[None]]] = {}
        self.held: dict[int, int] = {}  # mailbox id -> the generation of its lease
        # mailbox id -> when (time.monotonic()) its runner stops unless renewed first:
        # the lease's length from the claim or renewal, less a sixth for safety.
        self.until: dict[int, float] = {}
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
                try:
                    active = await asyncio.to_thread(self._active)
                    await asyncio.to_thread(self._keep_leases)
                    self._stop_runners(active)
                    await asyncio.to_thread(self._release_stopped)
                    share = await asyncio.to_thread(self._share, len(active))
                    self._hand_back(share)
                    claimed = await asyncio.to_thread(self._claim, active, share)
                except ROUND_FAILURES as exc:  # the database away: the runners go on
                    log.warning("imap: mailboxes not looked at: %s", exc)
                    claimed = {}
                if claimed and vault is None:
                    vault = Vault.load(self.config.secret_key_file)
                for mailbox_id, generation in claimed.items():
                    assert vault is not None
                    self.held[mailbox_id] = generation
                    fence = leases.fencing(KIND, str(mailbox_id), self.owner, generation)
                    runner = MailboxRunner(
                        self.db,
                        self.config,
                        vault,
                        mailbox_id,
                        stored,
                        fence,
                        self.owner,
                        self._until_of(mailbox_id),
                    )
                    self.runners[mailbox_id] = (runner, loop.run_in_executor(executor, runner.run))
                try:
                    nudge = await asyncio.to_thread(self._with_wanted_mail)
                    mine = set(self.runners)
                    nudge |= await asyncio.to_thread(take_sync_requests, self.db, mine)
                except ROUND_FAILURES:
                    nudge = set()
                for mailbox_id in nudge:
                    if mailbox_id in self.runners:
                        self.runners[mailbox_id][0].nudge()
                with contextlib.suppress(TimeoutError):  # and renew the leases in time
                    wait = min(RESCAN, self.config.cluster.lease / 3)
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            for runner, _ in self.runners.values():
                runner.stop()
            futures = [future for _, future in self.runners.values()]
            if futures:
                await asyncio.wait(futures, timeout=self.config.imap.timeout + 5)
            executor.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(*ROUND_FAILURES):  # others take them over at once
                await asyncio.to_thread(self._give_back, list(self.held))

    def _keep_leases(self) -> None:
        """Renew the leases held; a runner whose lease was lost stops at once."""
        held = {str(k): g for k, g in self.held.items()}
        asked = time.monotonic()
        kept = leases.renew(self.db, KIND, self.owner, held, self.config.cluster.lease)
        for key in kept:
            self.until[int(key)] = self._deadline(asked)
        for mailbox_id in [m for m in self.held if str(m) not in kept]:
            log.warning("imap: mailbox %s: its lease was lost; another node syncs it", mailbox_id)
            del self.held[mailbox_id]
            self.until.pop(mailbox_id, None)
            if mailbox_id in self.runners:
                self.runners[mailbox_id][0].stop()

    def _stop_runners(self, active: set[int]) -> None:
        for mailbox_id, (runner, future) in self.runners.items():
            if mailbox_id not in active or future.done():
                runner.stop()

    def _release_stopped(self) -> None:
        """Runners that ended: their leases free again (due now, for any node)."""
        ended = [m for m, (_, future) in self.runners.items() if future.done()]
        for mailbox_id in ended:
            del self.runners[mailbox_id]
        self._give_back([m for m in ended if m in self.held])

    def _until_of(self, mailbox_id: int) -> Callable[[], float]:
        return lambda: self.until.get(mailbox_id, 0.0)

    def _deadline(self, asked: float) -> float:
        return asked + self.config.cluster.lease * 5 / 6

    def _give_back(self, mailbox_ids: list[int]) -> None:
        for mailbox_id in mailbox_ids:
            self.until.pop(mailbox_id, None)
            generation = self.held.pop(mailbox_id, None)
            if generation is not None:
                leases.finish(self.db, KIND, self.owner, str(mailbox_id), generation, utcnow())

    def _share(self, active: int) -> int:
        """This node's share of the active mailboxes: their number over the nodes
        running the role now (each says so every pass), at most [imap] max_connections."""
        nodes = leases.announce(self.db, KIND, self.owner, self.config.cluster.lease)
        share = -(-active // len(nodes))
        limit = self.config.imap.max_connections
        if share > limit and not self.over_limit:
            log.warning(
                "%s active mailboxes for this node but [imap] max_connections is %s: the "
                "rest wait until one stops",
                share,
                limit,
            )
        self.over_limit = share > limit
        return min(share, limit)

    def _hand_back(self, share: int) -> None:
        """Holding more than the share (a node joined): stop half of the excess
        (at least one) a pass, the newest first; their leases are given back once
        they have stopped, and the nodes short of their share claim them."""
        running = [m for m, (runner, _) in self.runners.items() if not runner.stopping.is_set()]
        excess = len(running) - share
        if excess <= 0:
            return
        for mailbox_id in sorted(running)[-max(1, excess // HAND_BACK) :]:
            log.info("imap: mailbox %s handed back to even the load", mailbox_id)
            self.runners[mailbox_id][0].stop()

    def _claim(self, active: set[int], share: int) -> dict[int, int]:
        want = share - len(self.runners)
        if want <= 0:
            return {}
        free = [str(m) for m in active if m not in self.runners and m not in self.held]
        lease = self.config.cluster.lease
        asked = time.monotonic()
        claimed = leases.claim_due(self.db, KIND, self.owner, free, want, lease)
        for key in claimed:
            self.until[int(key)] = self._deadline(asked)
        return {int(k): g for k, g in claimed.items()}

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
    return ImapRole(ctx.db, ctx.config, ctx.stored, ctx.owner)
