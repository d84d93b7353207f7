"""The service runner: `gateway serve` starts the enabled roles and stops them cleanly.

This is the composition root; it alone imports the role packages (inbound,
outbound, admin). Each role has `start()` (bind sockets; errors stop start-up)
and `run(stop)`. SIGTERM and SIGINT set the stop event; every role finishes
its current unit of work and returns. With [serve] workers > 0 the roles run
in worker processes under gateway.supervisor, each built here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from gateway.config import KNOWN_ROLES, Config
from gateway.db import Database
from gateway.errors import ConfigError
from gateway.pipeline import Pipeline
from gateway.smtp_server import Gate

log = logging.getLogger(__name__)
BATCH = 1000


class Role(Protocol):
    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


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


async def first_of(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Wait until `stop` or `wake` is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


def build_roles(
    names: Sequence[str],
    db: Database,
    config: Config,
    *,
    wake: Callable[[], None] | None = None,
    queued: Callable[[], None] | None = None,
    gate: Gate | None = None,
    listeners: Mapping[str, socket.socket] | None = None,
    process: str = "serve",
) -> tuple[dict[str, Role], PipelineWorker | None]:
    """The roles `names` of one process, and its pipeline worker if it runs one.

    `wake` tells the pipeline that a message was stored (default: this process's
    own pipeline worker), `queued` tells the delivery role that a message was
    queued (default: this process's own delivery role); `process` names this
    process among the gateway's (the worker's name); `gate` and `listeners` are
    the supervisor's per-IP
    limits and listening sockets when the process is one of several workers."""
    check_roles(names)
    built: dict[str, Role] = {}
    worker = PipelineWorker(db, config) if "pipeline" in names else None
    if worker is not None:
        built["pipeline"] = worker
    if "dropbox" in names:
        from inbound.dropbox import DropboxServer

        built["dropbox"] = DropboxServer(
            db,
            config,
            wake or (worker.wake if worker else _nothing),
            gate=gate,
            sock=(listeners or {}).get("dropbox"),
        )
    if "imap" in names:
        from inbound.imap.service import ImapRole

        built["imap"] = ImapRole(db, config, wake or (worker.wake if worker else _nothing))
    delivery = None
    if "delivery" in names:
        from gateway.vault import Vault
        from inbound.imap.sent_copy import save_to_sent
        from outbound.delivery import DeliveryRole

        # The copy in the user's Sent folder is IMAP work: wired here, so that
        # outbound needs nothing of inbound.
        vault = Vault.load(config.secret_key_file)
        delivery = DeliveryRole(
            db,
            config,
            sent_copy=functools.partial(save_to_sent, db, config, vault),
            owner=f"{socket.gethostname()}/{process}",
        )
        built["delivery"] = delivery
    if "submission" in names:
        from outbound.submission import SubmissionServer

        built["submission"] = SubmissionServer(
            db, config, queued=delivery.wake if delivery is not None else queued or _nothing
        )
    if "web" in names:
        from admin.server import WebRole

        built["web"] = WebRole(
            db, config, queued=delivery.wake if delivery is not None else queued or _nothing
        )
    return built, worker


def check_roles(names: Sequence[str]) -> None:
    for name in names:
        if name not in KNOWN_ROLES:
            raise ConfigError("serve.roles", "--roles", f"unknown role {name!r}")


def _nothing() -> None:
    pass


async def run_roles(roles: Mapping[str, Role], stop: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        for name, role in roles.items():
            group.create_task(role.run(stop), name=name)
        group.create_task(stop.wait(), name="stop")


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`: every role finishes its unit of work and returns."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class Service:
    """`gateway serve`: with [serve] workers = 0 every role runs in this process;
    otherwise a supervisor starts worker processes for them (gateway.supervisor)."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config = config
        self.db = db

    async def serve(self, names: Sequence[str], ready: Callable[[], None] = lambda: None) -> None:
        if self.config.serve.workers > 0:
            from gateway.supervisor import Supervisor

            check_roles(names)
            await Supervisor(self.config, names).serve(ready)
            return
        roles, _ = build_roles(names, self.db, self.config)
        stop = asyncio.Event()
        with stop_on_signals(stop):
            for role in roles.values():
                await role.start()
            log.info("serving roles: %s", ", ".join(roles) or "(none)")
            ready()
            await run_roles(roles, stop)
        log.info("stopped")
