"""A bare aiosmtpd server that accepts and discards every message: the ceiling.

With --commit DB it instead stores each message in a SQLite table (WAL,
synchronous=FULL) and commits before answering 250: the simplest durable
server, the floor any durable design starts from.

python -m bench.sink_server PORT [--commit DB]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from typing import Any

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


class CommittingSink:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS mail (sender TEXT, rcpts TEXT, data BLOB)")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT INTO mail VALUES (?, ?, ?)",
            (envelope.mail_from, ",".join(envelope.rcpt_tos), envelope.original_content),
        )
        self.db.execute("COMMIT")
        return "250 OK"


async def main(port: int, commit: str | None) -> None:
    handler = CommittingSink(commit) if commit else Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=26214400), "127.0.0.1", port
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--commit", metavar="DB", help="commit each message to this SQLite file")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.commit))
