"""Database work of a request, off the event loop: one transaction per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from sqlalchemy.orm import Session

from gateway.db import Database

T = TypeVar("T")


async def in_session(request: Request, work: Callable[[Session], T]) -> T:
    """`work(session)` in one transaction of the app's database, in a worker thread.

    A GET (or HEAD) changes nothing: it gets a read-only transaction, which on SQLite
    never waits for the writers' lock, so reads run side by side."""
    db: Database = request.app.state.db
    reading = request.method in ("GET", "HEAD")

    def run() -> T:
        with db.read() if reading else db.session() as session:
            return work(session)

    return await asyncio.to_thread(run)
