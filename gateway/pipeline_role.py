"""The `pipeline` role: finishes pending sightings at start (crash recovery), when
woken (a message was stored: RoleContext.stored), and every poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.config import Config
from gateway.db import Database
from gateway.pipeline import Pipeline
from gateway.role import RoleContext, first_of

log = logging.getLogger(__name__)
BATCH = 1000


class PipelineWorker:
    """Finishes pending sightings: at start (crash recovery), when woken, and every poll."""

    def __init__(self, db: Database, config: Config) -> None:
        self.config = config
        self.pipeline = Pipeline(db, config)
        self.interval = config.pipeline.poll_interval
        self.gather = config.pipeline.gather_time
        self.wake_event = asyncio.Event()

    def wake(self) -> None:
        self.wake_event.set()

    async def start(self) -> None:
        pass

    async def _run_pending(self) -> int:
        return len(await asyncio.to_thread(self.pipeline.run_pending, BATCH))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake_event.clear()
            done = 0
            try:
                done = await self._run_pending()
                if done:
                    log.info("pipeline: finished %s message(s)", done)
            except Exception:  # the database may be briefly away; keep going
                log.exception("pipeline: batch failed; retrying")
            if done >= BATCH:
                continue  # more may be waiting: no pause
            await first_of(stop, self.wake_event, self.interval)
            if self.gather and self.wake_event.is_set():
                # Let the messages that arrive together be finished together:
                # one transaction for several costs less than one for each.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.gather)


def build(ctx: RoleContext) -> PipelineWorker:
    worker = PipelineWorker(ctx.db, ctx.config)
    ctx.stored.connect(worker.wake)
    return worker
