"""The service runner: `gateway serve` starts the enabled roles and stops them cleanly.

This is the composition root; it alone imports the role packages (inbound,
outbound, admin). Each role has `start()` (bind sockets; errors stop start-up)
and `run(stop)`. SIGTERM and SIGINT set the stop event; every role finishes
its current unit of work and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from gateway.config import KNOWN_ROLES, Config
from gateway.db import Database
from gateway.errors import ConfigError
from gateway.pipeline import Pipeline

log = logging.getLogger(__name__)
BATCH = 1000
ORPHAN_CHECK_SECONDS = 0.5


class Role(Protocol):
    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


_CHILD_PIPELINE: Pipeline | None = None


def _new_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_child_init,
    )


def _child_init() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the child itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL cannot stop its child: the child notices that
    # it was orphaned and exits (the database rolls back what it had begun).
    parent = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


def _run_pending_in_child(config: Config, limit: int) -> int:
    """In the pipeline's child process: one Database for the process's life."""
    global _CHILD_PIPELINE
    if _CHILD_PIPELINE is None:
        _CHILD_PIPELINE = Pipeline(Database(config.database_url), config)
    return len(_CHILD_PIPELINE.run_pending(limit))


class PipelineWorker:
    """Finishes pending sightings: at start (crash recovery), when woken, and every poll.

    With [pipeline] own_process the work runs in a child process (one worker of
    a process pool), so that parsing and matching use another core than the
    event loop of the SMTP servers.
    """

    def __init__(self, db: Database, config: Config) -> None:
        self.config = config
        self.pipeline = Pipeline(db, config)
        self.interval = config.pipeline.poll_interval
        self.wake_event = asyncio.Event()
        self.pool: ProcessPoolExecutor | None = None

    def wake(self) -> None:
        self.wake_event.set()

    async def start(self) -> None:
        if self.config.pipeline.own_process:
            self.pool = _new_pool()

    async def _run_pending(self) -> int:
        if self.pool is None:
            return len(await asyncio.to_thread(self.pipeline.run_pending, BATCH))
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, _run_pending_in_child, self.config, BATCH)
        except BrokenProcessPool:
            # The child died (killed, out of memory): its transaction rolled
            # back; a new child redoes the work.
            log.error("pipeline: the worker process died; starting a new one")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = _new_pool()
            raise

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._loop(stop)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    async def _loop(self, stop: asyncio.Event) -> None:
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
            await _first_of(stop, self.wake_event, self.interval)


async def _first_of(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


class Service:
    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db

    def roles(self, names: Sequence[str]) -> dict[str, Role]:
        for name in names:
            if name not in KNOWN_ROLES:
                raise ConfigError("serve.roles", "--roles", f"unknown role {name!r}")
        worker = PipelineWorker(self.db, self.config)
        built: dict[str, Role] = {}
        if "pipeline" in names:
            built["pipeline"] = worker
        if "dropbox" in names:
            from inbound.dropbox import DropboxServer

            built["dropbox"] = DropboxServer(self.db, self.config, worker.wake)
        return built

    async def serve(self, names: Sequence[str], ready: Callable[[], None] = lambda: None) -> None:
        roles = self.roles(names)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            for role in roles.values():
                await role.start()
            log.info("serving roles: %s", ", ".join(roles) or "(none)")
            ready()
            async with asyncio.TaskGroup() as group:
                for name, role in roles.items():
                    group.create_task(role.run(stop), name=name)
                group.create_task(stop.wait(), name="stop")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("stopped")
