"""A TCP proxy in front of PostgreSQL that counts round trips: each time a client
speaks after the server last answered it (a query and its wait for the answer; a
pipelined batch counts once). It also counts the queries (simple Query and extended
Execute messages) and the transactions ended (COMMIT/ROLLBACK are queries; their
count comes from pg_stat_database, not from here). The connection must not use TLS
(sslmode=disable), so that the messages can be read.

    python -m bench.pg_round_trips TARGET_PORT COUNTS_FILE [STATEMENTS_FILE]

prints its port, then rewrites COUNTS_FILE ("round_trips queries connections") ten
times a second until killed; with STATEMENTS_FILE, it also writes there the text of
each statement run, one a line: what to count to find the trips. It runs in a
process of its own so that it does not share Python's GIL with the gateway or the
benchmark's clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from pathlib import Path
from typing import TextIO


class Counts:
    def __init__(self) -> None:
        self.round_trips = 0
        self.queries = 0
        self.connections = 0


async def _server_to_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: list[bool]
) -> None:
    while data := await reader.read(65536):
        answered[0] = True
        writer.write(data)
        await writer.drain()
    writer.close()


async def _client_to_server(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answered: list[bool],
    counts: Counts,
    statements: TextIO | None,
) -> None:
    buffer = b""
    prepared: dict[bytes, str] = {}  # statement name -> its text (Parse)
    started = False  # past the startup message (which has no type byte)
    while data := await reader.read(65536):
        if answered[0]:
            counts.round_trips += 1
            answered[0] = False
        buffer += data
        while True:
            if not started:
                if len(buffer) < 8:
                    break
                (length,) = struct.unpack("!I", buffer[:4])
                if len(buffer) < length:
                    break
                code = struct.unpack("!I", buffer[4:8])[0]
                buffer = buffer[length:]
                started = code not in (80877103, 80877104)  # SSLRequest, GSSENCRequest
                continue
            if len(buffer) < 5:
                break
            (length,) = struct.unpack("!I", buffer[1:5])
            if len(buffer) < length + 1:
                break
            if buffer[:1] in (b"Q", b"E"):
                counts.queries += 1
            if statements is not None:
                _note(buffer[:1], buffer[5 : length + 1], prepared, statements)
            buffer = buffer[length + 1 :]
        writer.write(data)
        await writer.drain()
    writer.close()


def _note(kind: bytes, body: bytes, prepared: dict[bytes, str], out: TextIO) -> None:
    """The text of each statement run: a Query's, or a Bind's prepared statement."""
    if kind == b"P":
        name, rest = body.split(b"\0", 1)
        prepared[name] = " ".join(rest.split(b"\0", 1)[0].decode(errors="replace").split())
    elif kind == b"B":
        name = body.split(b"\0", 2)[1]
        out.write(prepared.get(name, "?")[:160] + "\n")
    elif kind == b"Q":
        out.write(" ".join(body.split(b"\0", 1)[0].decode(errors="replace").split())[:160] + "\n")


async def main(target: int, counts_file: Path, statements_file: Path | None) -> None:
    counts = Counts()
    statements = statements_file.open("a") if statements_file else None

    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        counts.connections += 1
        answered = [True]  # the first message of a session is a round trip
        with contextlib.suppress(ConnectionError):
            await asyncio.gather(
                _client_to_server(client_reader, server_writer, answered, counts, statements),
                _server_to_client(server_reader, client_writer, answered),
            )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    while True:
        partial = counts_file.with_suffix(".new")  # replaced whole: never read half-written
        partial.write_text(f"{counts.round_trips} {counts.queries} {counts.connections}\n")
        os.replace(partial, counts_file)
        if statements is not None:
            statements.flush()
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    logged = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), logged))
