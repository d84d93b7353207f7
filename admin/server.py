"""The `web` role of `gateway serve`: uvicorn serving admin.app on [web] listen.

The socket is bound in start() (or, with worker processes, by the supervisor:
each worker serves on its own SO_REUSEPORT socket of the group), so a port in use
stops start-up with the key named; run() serves until the stop event, then lets
requests in flight finish.
The runner owns SIGTERM/SIGINT: uvicorn's own signal handling is turned off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn

from admin.app import create_app
from gateway.config import Config, host_port
from gateway.db import Database
from gateway.role import RoleContext, cannot_listen

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the gateway's runner handles signals and sets the stop event


class WebRole:
    def __init__(
        self,
        db: Database,
        config: Config,
        queued: Callable[[], None] = lambda: None,
        sock: socket.socket | None = None,
    ) -> None:
        """`sock`: a listening socket shared with other worker processes (the
        supervisor's, SO_REUSEPORT); default: bind [web] listen here."""
        self.db = db
        self.config = config
        self.queued = queued
        self.sock = sock
        self.port = 0

    async def start(self) -> None:
        host, port = host_port(self.config.web.listen)
        if self.sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                self.sock = socket.create_server((host, port), family=family, backlog=128)
            except OSError as exc:
                raise cannot_listen(
                    self.config, "web", "web.listen", self.config.web.listen, exc
                ) from exc
        # Answers are written in pieces (head, body): without TCP_NODELAY (inherited by
        # accepted sockets) every answer on a kept-alive connection after the first
        # waits ~40 ms for the client's delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.sock.getsockname()[1]
        log.info("web: listening on http://%s:%s", host, self.port)

    async def run(self, stop: asyncio.Event) -> None:
        assert self.sock is not None, "start() first"
        # Everything loaded so far (the app, its libraries) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it. Without
        # this, one request in a hundred waited 60-80 ms for one (bench/api_messages.py).
        gc.collect()
        gc.freeze()
        settings = uvicorn.Config(
            create_app(self.db, self.config, self.queued),
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=10,
            proxy_headers=True,  # the client's IP and scheme, from trusted proxies only
            forwarded_allow_ips=self.config.web.forwarded_allow_ips,
        )
        server = _Server(settings)
        serving = asyncio.create_task(server.serve(sockets=[self.sock]), name="web")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            server.should_exit = True
            await serving
            self.sock.close()


def build(ctx: RoleContext) -> WebRole:
    """The `web` role (gateway.registry): mail sent by HTTP wakes delivery. Under a
    supervisor it runs in every worker process, on the listening socket they share."""
    return WebRole(ctx.db, ctx.config, queued=ctx.queued, sock=ctx.listeners.get("web"))
