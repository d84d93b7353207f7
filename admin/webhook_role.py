"""The `webhooks` role: delivers the outbox's events to the account's endpoints.

Up to [webhooks] concurrency deliveries are in flight in each process, each in a
thread of its own, at most per_endpoint to one endpoint: an endpoint that hangs
holds up only its own deliveries, never mail flow or other endpoints. Any number
of processes or nodes may run it: deliveries are claimed as the delivery queue's
are, and a claim of a process that died is taken back after CLAIM_LEASE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from admin.webhook_delivery import Dispatcher, Job
from gateway.config import Config
from gateway.db import Database
from gateway.role import RoleContext, until_any

log = logging.getLogger(__name__)
EXPIRE_EVERY = 60.0  # seconds between looks for claims of processes that died


class WebhooksRole:
    def __init__(self, db: Database, config: Config, owner: str | None = None) -> None:
        self.config = config
        self.dispatcher = Dispatcher(db, config, owner)
        self.wake_event = asyncio.Event()
        self.pool = ThreadPoolExecutor(config.webhooks.concurrency, "webhooks")
        self.in_flight: Counter[int] = Counter()  # endpoint id -> deliveries in flight
        self._expired = 0.0

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
        try:
            while not stop.is_set():
                self.wake_event.clear()
                try:
                    while await asyncio.to_thread(self.dispatcher.fan_out):
                        pass
                    if time.monotonic() - self._expired > EXPIRE_EVERY:
                        self._expired = time.monotonic()
                        await asyncio.to_thread(self.dispatcher.expire)
                    free = settings.concurrency - len(flying)
                    busy = {e for e, n in self.in_flight.items() if n >= settings.per_endpoint}
                    jobs = (
                        await asyncio.to_thread(self.dispatcher.claim, free, busy) if free else []
                    )
                except Exception:
                    log.exception("webhooks: cannot read the outbox; trying again")
                    jobs = []
                for job in self._within_limits(jobs):
                    self.in_flight[job.endpoint_id] += 1
                    flying.add(loop.run_in_executor(self.pool, self._attempt, job))
                if jobs and len(flying) < settings.concurrency:
                    continue  # more may be due at once
                # A free slot, the poll, or a stop.
                await until_any(stop, flying, self.wake_event, settings.poll_interval)
                flying = {f for f in flying if not f.done()}
        finally:
            if flying:
                await asyncio.gather(*flying, return_exceptions=True)
            self.pool.shutdown(wait=False)

    def _within_limits(self, jobs: list[Job]) -> list[Job]:
        """The claim takes no endpoint already at its limit; within one claim, jobs
        past an endpoint's limit are given back at once (due again)."""
        taken: Counter[int] = Counter()
        kept = []
        for job in jobs:
            limit = self.config.webhooks.per_endpoint
            if self.in_flight[job.endpoint_id] + taken[job.endpoint_id] >= limit:
                self.dispatcher.give_back(job)
                continue
            taken[job.endpoint_id] += 1
            kept.append(job)
        return kept

    def _attempt(self, job: Job) -> None:
        try:
            state = self.dispatcher.attempt(job)
            log.info("webhooks: delivery %s to endpoint %s: %s", job.id, job.endpoint_id, state)
        except Exception:
            log.exception("webhooks: delivery %s failed to be recorded; due again later", job.id)
        finally:
            self.in_flight[job.endpoint_id] -= 1


def build(ctx: RoleContext) -> WebhooksRole:
    """The `webhooks` role (gateway.registry): it looks for new events and due retries
    every [webhooks] poll_interval."""
    return WebhooksRole(ctx.db, ctx.config, owner=ctx.owner)
