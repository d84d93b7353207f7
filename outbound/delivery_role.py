"""The `delivery` role: keeps up to [outbound] concurrency messages in flight in
each process (there may be several, [outbound] processes, or hosts), each in a
thread of its own (sign, send, record); new ones are claimed as others finish, so
a slow server holds up only its own message. Copies to Sent are made apart, up to
COPY_CONCURRENCY at once, woken as each message is sent. A heartbeat renews the
claims of the messages in flight every third of [cluster] lease, whatever the
sending does, and takes back those of processes gone for the lease.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

from gateway.config import Config
from gateway.db import Database
from gateway.role import RoleContext, first_of, heartbeat, until_any
from gateway.vault import Vault
from outbound.claims import Job
from outbound.delivery import Delivery, SentCopy
from outbound.sent_copy import COPY_CONCURRENCY, save_to_sent

log = logging.getLogger(__name__)


class DeliveryRole:
    """Keeps up to [outbound] concurrency messages in flight, each in a thread of its
    own (sign, send, record): new ones are claimed as others finish, so a slow server
    holds up only its own message."""

    def __init__(
        self,
        db: Database,
        config: Config,
        sent_copy: SentCopy | None = None,
        owner: str | None = None,
    ) -> None:
        self.delivery = Delivery(db, config, sent_copy, owner)
        self.config = config
        self.stranded: set[int] = set()  # messages whose outcome could not be recorded
        self.sending: set[int] = set()  # messages in flight here
        self.wake_event = asyncio.Event()
        self.pool = ThreadPoolExecutor(config.outbound.concurrency, "delivery")
        # Copies to Sent are made apart from the sending slots: one may wait
        # GRACE seconds for a server that saves its own, which must not hold up mail.
        self.copy_event = asyncio.Event()
        self.copy_pool = ThreadPoolExecutor(COPY_CONCURRENCY, "sent-copy")
        self._loop_of: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """A message was queued (called from the event loop's thread)."""
        self.wake_event.set()

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.delivery.recover)
        if recovered:
            log.info("delivery: %s message(s) cut short by a stop go back to the queue", recovered)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop_of = asyncio.get_running_loop()
        beating = asyncio.ensure_future(heartbeat(stop, self.config.cluster.lease / 3, self._lease))
        try:
            if self.delivery.sent_copy is not None:
                await asyncio.gather(self._loop(stop), self._copy_loop(stop))
            else:
                await self._loop(stop)
        finally:
            beating.cancel()
            await asyncio.to_thread(self.delivery.close)
            self.pool.shutdown(wait=False)
            self.copy_pool.shutdown(wait=False)

    async def _loop(self, stop: asyncio.Event) -> None:
        outbound = self.config.outbound
        loop = asyncio.get_running_loop()
        flying: set[asyncio.Future[None]] = set()
        refill = max(1, outbound.concurrency // 2)
        try:
            while not stop.is_set():
                self.wake_event.clear()
                jobs: list[Job] = []
                free = outbound.concurrency - len(flying)
                if free > 0:
                    try:
                        jobs = await asyncio.to_thread(self.delivery.claim, free)
                    except Exception:
                        log.exception("delivery: cannot read the queue; retrying")
                for job in jobs:
                    self.sending.add(job.id)
                    flying.add(loop.run_in_executor(self.pool, self._attempt, job))
                if jobs and len(jobs) == free:
                    # Every slot taken and more may be waiting: claim again once half
                    # of them are free (a claim is a transaction: one for several).
                    while len(flying) > outbound.concurrency - refill and not stop.is_set():
                        await until_any(stop, flying)
                        flying = {f for f in flying if not f.done()}
                    continue
                if self.stranded:
                    await asyncio.to_thread(self._give_back)
                # The queue is empty for now: a new message, a free slot or the poll.
                await until_any(stop, flying, self.wake_event, outbound.poll_interval)
                flying = {f for f in flying if not f.done()}
        finally:
            if flying:
                await asyncio.gather(*flying, return_exceptions=True)

    def _give_back(self) -> None:
        stranded = set(self.stranded)
        try:
            given = self.delivery.recover(stranded)
        except Exception:
            log.warning("delivery: the database is still away; %s message(s) wait", len(stranded))
            return
        self.stranded -= stranded
        log.info(
            "delivery: %s message(s) whose outcome was not recorded go back to the queue", given
        )

    async def _copy_loop(self, stop: asyncio.Event) -> None:
        """Copies in Sent still missing: of messages just sent (woken), and those of a
        stop right after sending or a mailbox that was away (every poll)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.copy_event.clear()
            try:
                due = await asyncio.to_thread(self.delivery.copies_due, COPY_CONCURRENCY)
            except Exception:
                log.exception("delivery: copies to Sent not found; trying again later")
                due = []
            if due:
                await asyncio.gather(
                    *(loop.run_in_executor(self.copy_pool, self._copy, i) for i in due)
                )
                continue
            await first_of(stop, self.copy_event, self.config.outbound.poll_interval)

    def _copy(self, message_id: int) -> None:
        try:
            self.delivery.copy_to_sent(message_id)
        except Exception:
            log.exception("delivery: copy of message %s to Sent failed", message_id)

    def _lease(self) -> None:
        """The heartbeat, every third of the lease: renew the claims in flight; take back
        those of processes gone for good."""
        try:
            self.delivery.renew(set(self.sending))
            expired = self.delivery.expire()
        except Exception as exc:  # the database away, most likely: next beat
            log.warning("delivery: claims not renewed: %s: %s", type(exc).__name__, exc)
            return
        if expired:
            log.warning(
                "delivery: %s message(s) of a process that is gone go back to the queue", expired
            )

    def _attempt(self, job: Job) -> None:
        try:
            self._attempt_once(job)
        finally:
            self.sending.discard(job.id)

    def _attempt_once(self, job: Job) -> None:
        try:
            results = self.delivery.attempt(job, copy=False)
        except Exception:
            # Its outcome could not be recorded (the database away): it is given back
            # to the queue once the database answers again, not left `sending`.
            log.exception("delivery: message %s failed to send; it goes back to the queue", job.id)
            self.stranded.add(job.id)
            return
        summary = ", ".join(f"{r}: {res.code}" for r, res in results.items())
        log.info("delivery: message %s via %s: %s", job.id, job.route, summary)
        if job.copy and self.delivery.sent_copy is not None and self._loop_of is not None:
            self._loop_of.call_soon_threadsafe(self.copy_event.set)  # its copy to Sent


def build(ctx: RoleContext) -> DeliveryRole:
    """The `delivery` role (gateway.registry): woken by queued mail; copies go to the
    user's Sent folder over IMAP (outbound.sent_copy)."""
    vault = Vault.load(ctx.config.secret_key_file)
    role = DeliveryRole(
        ctx.db,
        ctx.config,
        sent_copy=functools.partial(save_to_sent, ctx.db, ctx.config, vault),
        owner=ctx.owner,
    )
    ctx.queued.connect(role.wake)
    return role
