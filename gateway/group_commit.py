"""Group commit: the writes of many concurrent callers share transactions.

One writer thread takes every unit of work waiting in its queue (up to
`max_batch`) and runs them in one transaction, so a burst of callers costs one
commit (one fsync) and one turn at SQLite's write lock instead of one each.
Each caller's future resolves only after the commit that holds its work.

A unit of work is a function of the open transaction (a Connection or a
Session, whichever `begin` opens) with no effects outside it: when a batch
fails, nothing of it is stored and each unit is run again in a transaction of
its own, so one bad unit cannot fail the others.

Used by the dropbox (a received message and its sightings), the submission
port (a queued message) and the delivery role (what each recipient's server
answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
C = TypeVar("C")


@dataclass
class _Unit(Generic[C]):
    work: Callable[[C], Any]
    future: Future[Any]


class GroupCommitter(Generic[C]):
    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[C]],
        *,
        max_batch: int = 64,
        name: str = "group-commit",
    ) -> None:
        self.begin = begin  # opens a transaction, committed when its block ends
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Unit[C] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def submit(self, work: Callable[[C], T]) -> Future[T]:
        """Queue `work`; its future holds what it returned once that is committed."""
        if self._closed:
            raise RuntimeError("the group committer is closed")
        future: Future[T] = Future()
        self._queue.put(_Unit(work, future))
        return future

    def call(self, work: Callable[[C], T]) -> T:
        """From a thread: `work` run and committed."""
        return self.submit(work).result()

    async def run(self, work: Callable[[C], T]) -> T:
        """From the event loop: `work` run and committed."""
        return await asyncio.wrap_future(self.submit(work))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.max_batch:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stopping = True
                    break
                batch.append(unit)
            try:
                self._commit(batch)
            except BaseException as exc:  # never let the writer die: callers would hang
                log.exception("group commit failed")
                for unit in batch:
                    _settle(unit.future, exc)
            if stopping:
                return

    def _commit(self, batch: list[_Unit[C]]) -> None:
        try:
            with self.begin() as transaction:
                results = [unit.work(transaction) for unit in batch]
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, exc)  # not stored: the caller answers 4xx
                return
            for unit in batch:  # nothing of the batch is stored: each on its own
                self._commit([unit])
            return
        for unit, result in zip(batch, results, strict=True):
            with contextlib.suppress(InvalidStateError):  # its caller gave up waiting
                unit.future.set_result(result)


def _settle(future: Future[Any], exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)
