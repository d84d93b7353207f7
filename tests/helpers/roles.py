"""Roles of `gateway serve` run in a thread of their own, for synchronous tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping

from gateway.role import Role, run_roles


@contextlib.contextmanager
def running(roles: Mapping[str, Role], stop_timeout: float = 30.0) -> Iterator[None]:
    """Start `roles` (a role that fails to start raises here) and run them on an event
    loop in a thread of their own until the block ends; then stop them as SIGTERM
    would, and fail if they do not stop within `stop_timeout` seconds."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        try:
            for role in roles.values():
                await role.start()
        except Exception as exc:  # raised again in the test's thread
            failed.append(exc)
            return
        finally:
            started.set()
        await run_roles(roles, stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30), "the roles did not start"
    if failed:
        thread.join(stop_timeout)
        loop.close()
        raise failed[0]
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(stop_timeout)
        assert not thread.is_alive(), f"{', '.join(roles)} did not stop"
        loop.close()
