"""The control channel between `gateway serve` and each of its worker processes.

One line per message over a socketpair:

    worker -> supervisor:  ready | failed <why> | wake | queued | admit <ip> | release <ip>
    supervisor -> worker:  yes | no (answers to admit, in order) | wake | queued

`wake`: a worker stored a message; the supervisor passes it on to the
background worker, whose pipeline then finishes it at once. `queued`: a worker
queued a message the CRM sends; the supervisor passes it on to the delivery
worker, which then sends it at once. `admit`/`release`:
the per-IP connection limits, kept by the supervisor for all SMTP workers.
End of file on a worker's side means the supervisor is gone (even killed by
SIGKILL, the kernel closes its end): the worker stops by itself.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


class WorkerChannel:
    """The worker's end; also the SMTP servers' Gate in a worker process."""

    def __init__(
        self,
        sock: socket.socket,
        on_wake: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.sock = sock
        self.on_wake = on_wake
        self.on_queued = on_queued
        self.on_lost = on_lost
        self._answers: collections.deque[tuple[str, asyncio.Future[bool]]] = collections.deque()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)
        self._task = asyncio.create_task(self._read(reader), name="control")

    def send(self, line: str) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(line.encode() + b"\n")

    def wake(self) -> None:
        self.send("wake")

    def queued(self) -> None:
        self.send("queued")

    async def admit(self, ip: str) -> bool:
        if self._writer is None or self._writer.is_closing():
            return False
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._answers.append((ip, answer))
        self.send(f"admit {ip}")
        return await answer

    def release(self, ip: str) -> None:
        self.send(f"release {ip}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                word = line.strip().decode("ascii", "replace")
                if word == "wake":
                    self.on_wake()
                elif word == "queued":
                    self.on_queued()
                elif word in ("yes", "no") and self._answers:
                    ip, answer = self._answers.popleft()
                    if not answer.done():
                        answer.set_result(word == "yes")
                    elif word == "yes":
                        # The client left while we asked (its task was cancelled):
                        # its admission must not count against it forever.
                        self.release(ip)
        except ConnectionError:
            pass
        for _, answer in self._answers:
            if not answer.done():
                answer.set_result(False)
        self._answers.clear()
        log.warning("the gateway's supervisor is gone: stopping this worker")
        self.on_lost()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()
