"""The twisted reactor in a thread of its own, started once per test session.

A reactor cannot be restarted, so every twisted peer (the DNS zone server, the
fault-injecting IMAP server) shares this one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet import threads

reactor: Any = _reactor  # twisted's reactor module is not usefully typed
_started = threading.Lock()
_thread: threading.Thread | None = None
T = TypeVar("T")


def start() -> None:
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
            )
            _thread.start()


def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `function` in the reactor thread and return its result."""
    start()
    result: T = threads.blockingCallFromThread(reactor, function, *args, **kwargs)
    return result
