"""Header scans in worker processes, so that reading thousands of headers does not
hold the sync's interpreter lock.

Parsing headers is pure-Python CPU work. In a thread it would hold the GIL while
the sync's other threads make thousands of short calls that release it (each
socket read, each SQLite statement) and then wait to get it back: measured here, a
busy parsing thread made 1,600 message inserts take 40 s instead of 0.2 s. A small
pool of processes (spawned once, shared by every mailbox of the process) parses
instead; a batch of a few messages, or a pool that broke, is parsed in place.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gateway.parsing import HeaderScan, scan_headers

log = logging.getLogger(__name__)
IN_PLACE = 64  # batches this small are not worth a round trip to another process
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_warming: Future[dict[int, HeaderScan]] | None = None  # the first task sent to the pool
_broken = False  # the workers could not start in this process: always in place


def scan_batch(headers: Mapping[int, bytes], local_part_case: str) -> dict[int, HeaderScan]:
    """Each message's scan (runs in a worker process)."""
    return {uid: scan_headers(raw, local_part_case) for uid, raw in headers.items()}


def submit(headers: Mapping[int, bytes], local_part_case: str) -> Future[dict[int, HeaderScan]]:
    """Start scanning `headers`; the future's result is scan_batch()'s. Until the
    worker processes are up (they take a few hundred ms to start), in place."""
    if len(headers) > IN_PLACE and _started():
        try:
            return _shared_pool().submit(scan_batch, dict(headers), local_part_case)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.warning("header scan processes unavailable (%s): scanning in place", exc)
            _reset()
    done: Future[dict[int, HeaderScan]] = Future()
    done.set_result(scan_batch(headers, local_part_case))
    return done


def warm() -> None:
    """Start the worker processes now (a few hundred ms of start-up), for example while
    the sync lists and searches its folders, so that batches need not wait for them."""
    global _warming
    with _lock:
        if _warming is not None or _broken:
            return
    try:
        first = _shared_pool().submit(scan_batch, {}, "lower")
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        log.warning("header scan processes unavailable (%s): scanning in place", exc)
        _reset()
        return
    with _lock:
        _warming = first


def _started() -> bool:
    """True once a worker process has answered; starts them on the first call."""
    global _broken
    if _broken:
        return False
    warm()
    with _lock:
        first = _warming
    if first is None or not first.done():
        return False
    if first.exception() is not None:  # the workers cannot start here: never again
        log.warning(
            "header scan processes failed to start (%s): scanning in place", first.exception()
        )
        _broken = True
        _reset()
        return False
    return True


def result(
    future: Future[dict[int, HeaderScan]], headers: Mapping[int, bytes], local_part_case: str
) -> dict[int, HeaderScan]:
    """The future's scans; if its worker process died, the batch is scanned in place."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        log.warning("a header scan process died (%s): scanning in place", exc)
        _reset()  # the next batch starts a new pool
        return scan_batch(headers, local_part_case)


def _shared_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            workers = max(1, min(4, (os.cpu_count() or 2) - 1))
            # Not fork (this process has threads) and not spawn (it imports the parent's
            # __main__ again): a fork server that imports just this module.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            _pool = ProcessPoolExecutor(workers, mp_context=context)
        return _pool


def _reset() -> None:
    global _pool, _warming
    with _lock:
        pool, _pool, _warming = _pool, None, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the worker processes (at exit, or when the imap role stops)."""
    global _pool, _warming
    with _lock:
        pool, _pool, _warming = _pool, None, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown)
