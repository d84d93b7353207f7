"""Per-IP connection limits of the SMTP servers: concurrent connections and new
connections per minute (421 4.7.0 past them), kept by one process or, with worker
processes, by the supervisor for all of them (a Gate)."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config import Config


@dataclass
class ConnectionLimiter:
    """Concurrent connections and connection rate per client IP (421 4.7.0 past them)."""

    max_concurrent: int
    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _open: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _recent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def admit(self, ip: str) -> bool:
        now = self.clock()
        recent = self._recent[ip]
        while recent and now - recent[0] > 60.0:
            recent.popleft()
        if self._open[ip] >= self.max_concurrent or len(recent) >= self.per_minute:
            return False
        recent.append(now)
        self._open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]
            if not self._recent.get(ip):
                self._recent.pop(ip, None)


def dropbox_limiter(config: Config) -> ConnectionLimiter:
    """The per-IP limits of [dropbox], for one process or for the supervisor of many."""
    dropbox = config.dropbox
    return ConnectionLimiter(dropbox.max_connections_per_ip, dropbox.connections_per_minute_per_ip)


class Gate(Protocol):
    """Admission of client connections under the per-IP limits: the process's own
    ConnectionLimiter, or the supervisor's, shared by all SMTP worker processes."""

    async def admit(self, ip: str) -> bool: ...

    def release(self, ip: str) -> None: ...


class LocalGate:
    def __init__(self, limiter: ConnectionLimiter) -> None:
        self.limiter = limiter

    async def admit(self, ip: str) -> bool:
        return self.limiter.admit(ip)

    def release(self, ip: str) -> None:
        self.limiter.release(ip)
