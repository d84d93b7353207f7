"""The service runner: `gateway serve` starts the enabled roles and stops them cleanly.

This is the composition root; it alone will import the role packages
(inbound, outbound, admin) as their roles arrive. SIGTERM and SIGINT set the
stop event; every role finishes its current unit of work and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from gateway.config import KNOWN_ROLES, Config
from gateway.db import Database
from gateway.errors import ConfigError
from gateway.pipeline import Pipeline

log = logging.getLogger(__name__)
BATCH = 1000


class PipelineWorker:
    """Finishes pending sightings: at start (crash recovery) and then every poll interval."""

    def __init__(self, db: Database, config: Config) -> None:
        self.pipeline = Pipeline(db, config)
        self.interval = config.pipeline.poll_interval

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            done = 0
            try:
                done = len(await asyncio.to_thread(self.pipeline.run_pending, BATCH))
                if done:
                    log.info("pipeline: finished %s message(s)", done)
            except Exception:  # the database may be briefly away; keep going
                log.exception("pipeline: batch failed; retrying")
            if done >= BATCH:
                continue  # more may be waiting: no pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


Role = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Service:
    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db

    def roles(self, names: Sequence[str]) -> dict[str, Role]:
        built: dict[str, Role] = {}
        for name in names:
            if name not in KNOWN_ROLES:
                raise ConfigError("serve.roles", "--roles", f"unknown role {name!r}")
            if name == "pipeline":
                built[name] = PipelineWorker(self.db, self.config).run
        return built

    async def serve(self, names: Sequence[str], ready: Callable[[], None] = lambda: None) -> None:
        roles = self.roles(names)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("serving roles: %s", ", ".join(roles) or "(none)")
        ready()
        try:
            async with asyncio.TaskGroup() as group:
                for name, role in roles.items():
                    group.create_task(role(stop), name=name)
                group.create_task(stop.wait(), name="stop")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")
