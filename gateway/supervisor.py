"""`gateway serve` with [serve] workers > 0: a supervisor and its worker processes.

    supervisor (this process): binds the listening sockets, keeps the per-IP
        connection limits for all SMTP workers, passes `wake` on to the
        background worker, restarts a worker that dies, stops them all.
    smtp-1 .. smtp-N: the SMTP roles (dropbox), accepting on the shared sockets.
    background: the pipeline and the other roles without a shared socket (imap,
        web, submission).
    delivery (or delivery-1 .. delivery-N, [outbound] processes): the delivery
        role, in processes of its own: DKIM signing is CPU work, which would
        otherwise hold up the submission port and the web app in the background
        worker (one Python process runs on one core at a time).

Each worker is `python -m gateway.worker` with a socketpair as its control
channel (gateway.control). A worker notices at once when the supervisor is
gone, even after SIGKILL, and stops by itself: no orphans.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway import registry
from gateway.config import Config, host_port
from gateway.errors import GatewayError
from gateway.role import cannot_listen, stop_on_signals
from gateway.smtp_limits import dropbox_limiter
from gateway.worker import WorkerSpec

log = logging.getLogger(__name__)
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # before each restart of quick successive deaths
STABLE_SECONDS = 60.0  # a worker that ran this long is restarted after the first delay


def bind_group(listen: str, count: int) -> list[socket.socket]:
    """`count` listening sockets on one address, one per SMTP worker.

    With SO_REUSEPORT the kernel spreads new connections over them evenly (one
    shared socket would let whichever worker wakes first accept a whole burst).
    The supervisor keeps them open: a worker that dies finds its socket, and the
    connections waiting in it, again when it is started anew.
    """
    host, port = host_port(listen)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_server(
                (host, port), family=family, backlog=511, reuse_port=count > 1
            )
            sockets.append(sock)
            sock.set_inheritable(True)
            port = sock.getsockname()[1]  # port 0: the others join the first one's port
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class StartFailed(GatewayError):
    """A worker could not start its roles (the reason is its own error's text)."""


class Child:
    """One worker process, started again whenever it dies until the supervisor stops."""

    def __init__(self, supervisor: Supervisor, name: str, roles: tuple[str, ...]) -> None:
        self.supervisor = supervisor
        self.name = name
        self.roles = roles
        self.ready = asyncio.Event()
        self.listeners: dict[str, socket.socket] = {}  # role -> its own listening socket
        self.proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._held: collections.Counter[str] = collections.Counter()
        self.failure = ""  # why it failed to start, in its own words

    def send(self, line: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(line.encode() + b"\n")

    async def run(self, stop: asyncio.Event) -> None:
        deaths = 0
        while not stop.is_set():
            started = time.monotonic()
            code = await self._run_once()
            if stop.is_set():
                return
            if not self.ready.is_set():
                raise StartFailed(
                    self.failure or f"worker {self.name} failed to start (exit status {code})"
                )
            if time.monotonic() - started > STABLE_SECONDS:
                deaths = 0
            delay = RESTART_DELAYS[min(deaths, len(RESTART_DELAYS) - 1)]
            deaths += 1
            log.error("worker %s exited (%s); starting it again in %.0f s", self.name, code, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _run_once(self) -> int | None:
        ours, theirs = socket.socketpair()
        listeners = {role: sock.fileno() for role, sock in self.listeners.items()}
        spec = WorkerSpec(self.name, self.roles, self.supervisor.config, listeners, theirs.fileno())
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.worker",
                self.name,  # not read: for ps, which then tells the workers apart
                stdin=asyncio.subprocess.PIPE,
                pass_fds=[theirs.fileno(), *listeners.values()],
            )
        finally:
            theirs.close()
        assert self.proc.stdin is not None
        self.proc.stdin.write(pickle.dumps(spec))
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        log.info("started worker %s (pid %s): %s", self.name, self.proc.pid, ", ".join(self.roles))
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            await self._serve(reader)
            return await self.proc.wait()
        finally:
            self._writer.close()
            self._writer = None
            limiter = self.supervisor.limiter
            for ip, count in self._held.items():  # its connections died with it
                for _ in range(count):
                    limiter.release(ip)
            self._held.clear()

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                word, _, arg = line.strip().decode("utf-8", "replace").partition(" ")
                if word == "wake":
                    self.supervisor.wake_background()
                elif word == "queued":
                    self.supervisor.wake_delivery()
                elif word == "admit":
                    admitted = self.supervisor.limiter.admit(arg)
                    if admitted:
                        self._held[arg] += 1
                    self.send("yes" if admitted else "no")
                elif word == "release" and self._held[arg] > 0:
                    self._held[arg] -= 1
                    self.supervisor.limiter.release(arg)
                elif word == "ready":
                    self.ready.set()
                elif word == "failed":
                    self.failure = arg
        except ConnectionError:
            pass

    def terminate(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait_stopped(self) -> None:
        if self.proc is None:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.error("worker %s did not stop in %.0f s: killing it", self.name, STOP_TIMEOUT)
            self.proc.kill()
            await self.proc.wait()


class Supervisor:
    def __init__(self, config: Config, roles: Sequence[str]) -> None:
        self.config = config
        self.limiter = dropbox_limiter(config)
        listening = registry.placed(roles, registry.LISTENING)
        background = registry.placed(roles, registry.BACKGROUND)
        self.smtp = [
            Child(self, f"smtp-{n + 1}", listening)
            for n in range(config.serve.workers if listening else 0)
        ]
        self.children: list[Child] = list(self.smtp)
        self.background = [Child(self, "background", background)] if background else []
        self.children += self.background
        count = config.outbound.processes
        self.delivery = [
            Child(self, role if count == 1 else f"{role}-{n + 1}", (role,))
            for role in registry.placed(roles, registry.OWN_PROCESS)
            for n in range(count)
        ]
        self.children += self.delivery

    def wake_background(self) -> None:
        for child in self.background:
            child.send("wake")

    def wake_delivery(self) -> None:
        for child in self.delivery:
            child.send("queued")

    async def serve(self, ready: Callable[[], None]) -> None:
        shared = (
            ("dropbox", self.config.dropbox.listen, "dropbox.listen"),
            ("web", self.config.web.listen, "web.listen"),
        )
        for role, where, key in shared:
            if not self.smtp or role not in self.smtp[0].roles:
                continue
            try:
                sockets = bind_group(where, len(self.smtp))
            except OSError as exc:
                raise cannot_listen(self.config, role, key, where, exc) from exc
            for child, sock in zip(self.smtp, sockets, strict=True):
                child.listeners[role] = sock
            host, port = sockets[0].getsockname()[:2]
            log.info("%s: listening on %s:%s", role, host, port)
        stop = asyncio.Event()
        try:
            with stop_on_signals(stop):
                async with asyncio.TaskGroup() as group:
                    for child in self.children:
                        group.create_task(child.run(stop), name=child.name)
                    await self._until_ready(stop)
                    if not stop.is_set():
                        log.info(
                            "serving with %s worker process(es), supervisor pid %s",
                            len(self.children),
                            os.getpid(),
                        )
                        ready()
                    await stop.wait()
                    for child in self.children:
                        child.terminate()
                    await asyncio.gather(*(child.wait_stopped() for child in self.children))
        except BaseExceptionGroup as group:
            failed = group.subgroup(GatewayError)
            if failed is None:
                raise
            first = failed.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            for child in self.children:
                for sock in child.listeners.values():
                    sock.close()
        log.info("stopped")

    async def _until_ready(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(c.ready.wait()) for c in self.children]
        all_ready: asyncio.Future[list[bool]] = asyncio.gather(*waits)
        stopped: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        try:
            either: list[asyncio.Future[Any]] = [all_ready, stopped]
            done, _ = await asyncio.wait(
                either,
                timeout=READY_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise GatewayError(f"workers not ready after {READY_TIMEOUT:.0f} s")
        finally:
            stopped.cancel()
            # A cancelled gather ends with CancelledError as its exception: read it,
            # or asyncio logs it as never retrieved.
            all_ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            all_ready.cancel()
            for wait in waits:
                wait.cancel()
