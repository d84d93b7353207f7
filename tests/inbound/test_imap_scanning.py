"""The header-scan worker processes: they really run, and their answers are parse()'s."""

from __future__ import annotations

import os
import time

from gateway.parsing import scan_headers
from inbound.imap import scanning


def _ready() -> bool:
    deadline = time.monotonic() + 30
    while not scanning._started():
        if scanning._broken or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_headers_are_scanned_in_another_process() -> None:
    assert _ready(), "the header scan processes did not start"
    assert scanning._shared_pool().submit(os.getpid).result(10) != os.getpid()
    headers = {
        uid: (
            f"From: S <s{uid}@stranger{uid % 7}.example>\r\nTo: bob@acme.com\r\n"
            f"Message-ID: <m{uid}@x>\r\nDate: Tue, 1 Dec 2026 09:05:00 +0100\r\n\r\n"
        ).encode()
        for uid in range(1, scanning.IN_PLACE + 50)
    }
    future = scanning.submit(headers, "lower")
    assert scanning.result(future, headers, "lower") == {
        uid: scan_headers(raw, "lower") for uid, raw in headers.items()
    }


def test_a_worker_that_dies_costs_nothing_but_time() -> None:
    assert _ready()
    headers = {uid: b"From: a@b.example\r\n\r\n" for uid in range(1, scanning.IN_PLACE + 2)}
    future = scanning.submit(headers, "lower")
    scanning.result(future, headers, "lower")
    # Kill the worker processes behind the pool's back: the next batch is answered.
    pool = scanning._shared_pool()
    for process in list(pool._processes.values()):
        process.kill()
    time.sleep(0.5)
    again = scanning.submit(headers, "lower")
    assert scanning.result(again, headers, "lower")[1].addresses == {"a@b.example"}
