"""A worker process of `gateway serve` (started by gateway.supervisor, never by hand).

    python -m gateway.worker NAME   < pickled WorkerSpec on standard input

(NAME, e.g. smtp-1, background or delivery, is there for `ps`; the spec has it.)

It runs its roles on the listening sockets and the control channel it
inherited, reports `ready`, and stops on SIGTERM/SIGINT or as soon as the
supervisor is gone (end of file on the control channel).
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import sys
from dataclasses import dataclass

from gateway.config import Config
from gateway.control import WorkerChannel
from gateway.db import Database
from gateway.errors import GatewayError
from gateway.logs import configure_logging
from gateway.registry import build_roles
from gateway.role import RoleContext, run_roles, stop_on_signals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    roles: tuple[str, ...]
    config: Config
    listeners: dict[str, int]  # role -> inherited file descriptor of its listening socket
    control: int  # inherited file descriptor of the control channel


async def run_worker(spec: WorkerSpec) -> None:
    config = spec.config
    db = Database(config.database_url, idle_in_transaction=config.cluster.lease / 2)
    stop = asyncio.Event()
    ctx = RoleContext(db, config, process=spec.name)
    channel = WorkerChannel(
        socket.socket(fileno=spec.control),
        on_wake=ctx.stored.heard,
        on_lost=stop.set,
        on_queued=ctx.queued.heard,
    )
    # News for a role in another process goes through the supervisor.
    ctx.stored.remote, ctx.queued.remote = channel.wake, channel.queued
    ctx.gate = channel
    try:
        with stop_on_signals(stop):
            await channel.open()
            ctx.listeners = {role: socket.socket(fileno=fd) for role, fd in spec.listeners.items()}
            try:
                roles = build_roles(spec.roles, ctx)
                for role in roles.values():
                    await role.start()
            except GatewayError as exc:
                # Said once, by the supervisor (`gateway serve` ends with it).
                channel.send("failed " + " ".join(str(exc).split()))
                raise
            channel.send("ready")
            await run_roles(roles, stop)
    finally:
        channel.close()
        db.dispose()


def main() -> int:
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    configure_logging(spec.config, spec.name)
    try:
        asyncio.run(run_worker(spec))
    except GatewayError:
        return 2  # the supervisor reports it
    return 0


if __name__ == "__main__":
    sys.exit(main())
