"""What every role is and what it is given: the Role protocol, the RoleContext a
role is built from, the signals roles send one another, and the waits they share.

A role has `start()` (bind sockets; an error stops start-up) and `run(stop)` (work
until `stop` is set, finish the unit of work in hand, return). Roles never import
one another: what one has to tell another ("a message was stored", "a message was
queued") goes through a Signal of the context, which calls the listeners in this
process or, when there are none, passes it on to the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.config import Config
from gateway.db import Database
from gateway.errors import ConfigError
from gateway.smtp_limits import Gate


class Role(Protocol):
    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class Signal:
    """One kind of news between roles: called by the role that has it, heard by the
    listeners in this process, else by `remote` (the supervisor's channel)."""

    def __init__(self, remote: Callable[[], None] | None = None) -> None:
        self.remote = remote
        self._listeners: list[Callable[[], None]] = []

    def connect(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def heard(self) -> None:
        """The news came from another process: tell this process's listeners only."""
        for listener in self._listeners:
            listener()

    def __call__(self) -> None:
        if self._listeners:
            self.heard()
        elif self.remote is not None:
            self.remote()


@dataclass
class RoleContext:
    """What a role is built from (gateway.registry names each role's factory)."""

    db: Database
    config: Config
    process: str = "serve"  # this process among the gateway's (a worker's name)
    gate: Gate | None = None  # the supervisor's per-IP limits, in a worker
    listeners: Mapping[str, socket.socket] = field(default_factory=dict)
    stored: Signal = field(default_factory=Signal)  # a message was stored: the pipeline
    queued: Signal = field(default_factory=Signal)  # a message was queued: delivery

    @property
    def owner(self) -> str:
        """ "node/process": unique among the processes sharing the database ([cluster]
        node, else the host name)."""
        return f"{self.config.cluster.node or socket.gethostname()}/{self.process}"


def cannot_listen(config: Config, role: str, key: str, where: str, exc: OSError) -> ConfigError:
    """The one-line error of a role whose listening address is taken (or not ours):
    it names the role, the address and the key to change."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return config.error(key, f"the {role} role cannot listen on {where}: {reason}")


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


async def until_any(
    stop: asyncio.Event,
    flying: set[asyncio.Future[None]],
    wake: asyncio.Event | None = None,
    timeout: float | None = None,
) -> None:
    """Until `stop` or `wake` is set, one of `flying` is done, or `timeout` passes."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(
            [*waiters, *flying], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter


async def heartbeat(stop: asyncio.Event, every: float, beat: Callable[[], None]) -> None:
    """`beat` in a thread now and every `every` seconds until `stop`: a role's lease
    and claim renewals, kept apart from its own work so that no slow step delays them."""
    while not stop.is_set():
        await asyncio.to_thread(beat)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


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
