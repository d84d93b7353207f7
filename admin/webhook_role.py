"""The `webhooks` role: delivers the outbox's events to the account's endpoints.

Up to [webhooks] concurrency deliveries are in flight in each process, each in a
thread of its own, at most per_endpoint to one endpoint: an endpoint that hangs
holds up only its own deliveries, never mail flow or other endpoints. As many more
per endpoint are claimed ahead and wait their turn without a thread, so that a
delivery that ends is followed at once, without a trip to the database. Any number
of processes or nodes may run it: deliveries are claimed as the delivery queue's
are, a heartbeat renews the claims held here every third of [cluster] lease, and a
claim of a process that died is taken back after the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from admin.webhook_delivery import Dispatcher, Job
from gateway.config import Config
from gateway.db import Database
from gateway.role import RoleContext, heartbeat, until_any

log = logging.getLogger(__name__)


class WebhooksRole:
    def __init__(self, db: Database, config: Config, owner: str | None = None) -> None:
        self.config = config
        self.dispatcher = Dispatcher(db, config, owner)
        self.wake_event = asyncio.Event()
        self.pool = ThreadPoolExecutor(config.webhooks.concurrency, "webhooks")
        self.in_flight: Counter[int] = Counter()  # endpoint id -> claimed, not yet recorded
        self.lanes: dict[int, asyncio.Semaphore] = {}  # endpoint id -> per_endpoint slots
        self.queued: dict[int, asyncio.Future[Any]] = {}  # job id -> waiting for a slot
        self.held: set[int] = set()  # deliveries claimed here and not yet recorded

    def wake(self) -> None:
        self.wake_event.set()

    async def start(self) -> None:
        recovered = await asyncio.to_thread(self.dispatcher.recover)
        if recovered:
            log.info("webhooks: %s delivery(ies) cut short by a stop are due again", recovered)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        flying: set[asyncio.Future[None]] = set()
        settings = self.config.webhooks
        beating = asyncio.ensure_future(heartbeat(stop, self.config.cluster.lease / 3, self._lease))
        try:
            while not stop.is_set():
                self.wake_event.clear()
                try:
                    while await asyncio.to_thread(self.dispatcher.fan_out):
                        pass
                    free = 2 * settings.concurrency - len(flying)
                    busy = {e for e, n in self.in_flight.items() if n >= 2 * settings.per_endpoint}
                    jobs = (
                        await asyncio.to_thread(self.dispatcher.claim, free, busy, self._room)
                        if free
                        else []
                    )
                except Exception:
                    log.exception("webhooks: cannot read the outbox; trying again")
                    jobs = []
                for job in jobs:
                    self.held.add(job.id)
                    self.in_flight[job.endpoint_id] += 1
                    flying.add(asyncio.ensure_future(self._lane(loop, job)))
                if jobs and len(flying) < 2 * settings.concurrency:
                    continue  # more may be due at once
                # A free slot, the poll, or a stop.
                await until_any(stop, flying, self.wake_event, settings.poll_interval)
                flying = {f for f in flying if not f.done()}
        finally:
            # Claimed deliveries still waiting their turn are given back at once; those
            # being sent finish (up to [webhooks] timeout).
            waiting = [job_id for job_id, task in self.queued.items() if not task.done()]
            for job_id in waiting:
                self.queued[job_id].cancel()
            if waiting:
                await asyncio.to_thread(self.dispatcher.give_back, waiting)
            if flying:
                await asyncio.gather(*flying, return_exceptions=True)
            beating.cancel()
            self.pool.shutdown(wait=False)
            await asyncio.to_thread(self.dispatcher.close)

    def _lease(self) -> None:
        """The heartbeat, every third of the lease: renew the claims held here; take
        back those of processes gone for good."""
        try:
            self.dispatcher.renew(set(self.held))
            expired = self.dispatcher.expire()
        except Exception:
            log.warning("webhooks: claims not renewed (the database is away)")
            return
        if expired:
            log.warning("webhooks: %s delivery(ies) of a process gone are due again", expired)

    def _room(self, endpoint_id: int) -> int:
        """Deliveries to the endpoint that may be claimed now: per_endpoint sending and
        as many more waiting their turn (so a finished one is followed at once)."""
        return 2 * self.config.webhooks.per_endpoint - self.in_flight[endpoint_id]

    async def _lane(self, loop: asyncio.AbstractEventLoop, job: Job) -> None:
        """`job` tried when its endpoint has fewer than per_endpoint in flight; waiting
        holds no thread, so a hanging endpoint holds per_endpoint threads at most."""
        lane = self.lanes.get(job.endpoint_id)
        if lane is None:
            lane = self.lanes[job.endpoint_id] = asyncio.Semaphore(
                self.config.webhooks.per_endpoint
            )
        try:
            waiting = asyncio.ensure_future(lane.acquire())
            self.queued[job.id] = waiting
            try:
                await waiting
            finally:
                del self.queued[job.id]
            try:
                await loop.run_in_executor(self.pool, self._attempt, job)
            finally:
                lane.release()
        except asyncio.CancelledError:
            pass  # stopping: given back by run()
        finally:
            self.in_flight[job.endpoint_id] -= 1
            self.held.discard(job.id)

    def _attempt(self, job: Job) -> None:
        try:
            state = self.dispatcher.attempt(job)
            log.info("webhooks: delivery %s to endpoint %s: %s", job.id, job.endpoint_id, state)
        except Exception:
            log.exception("webhooks: delivery %s failed to be recorded; due again later", job.id)


def build(ctx: RoleContext) -> WebhooksRole:
    """The `webhooks` role (gateway.registry): it looks for new events and due retries
    every [webhooks] poll_interval."""
    return WebhooksRole(ctx.db, ctx.config, owner=ctx.owner)
