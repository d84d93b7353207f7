"""The service runner: `gateway serve` starts the enabled roles and stops them cleanly.

Roles are built by name through gateway.registry (the composition root), each from
a RoleContext. SIGTERM and SIGINT set the stop event; every role finishes its
current unit of work and returns. With [serve] workers > 0 the roles run in worker
processes under gateway.supervisor, built there the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from gateway.config import Config
from gateway.db import Database
from gateway.registry import build_roles, check_roles
from gateway.role import RoleContext, run_roles, stop_on_signals

log = logging.getLogger(__name__)


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
        roles = build_roles(names, RoleContext(self.db, self.config))
        stop = asyncio.Event()
        with stop_on_signals(stop):
            for role in roles.values():
                await role.start()
            log.info("serving roles: %s", ", ".join(roles) or "(none)")
            ready()
            await run_roles(roles, stop)
        log.info("stopped")
