"""Durability figure: kill -9 of `gateway serve` at random moments during dropbox
deliveries over 50 parallel sessions, repeated; then count what got 250 and is missing.

    .venv/bin/python -m bench.crash_durability --rounds 5 --messages 1000 --sessions 50

Prints: messages acknowledged, acknowledged but missing (must be 0), messages
stored twice (must be 0), stored but never acknowledged (killed between commit
and reply: allowed, at most the sessions in flight).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from bench.dropbox_ingest import prepare_gateway, wait_ready
from gateway.models import Message, MessageContact, Sighting


def serve(config_file: Path, n: int) -> subprocess.Popen[bytes]:
    log = config_file.with_name(f"serve-{n}.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_file), "serve"],
            stderr=out,
            env={**os.environ, "GATEWAY_LOG__LEVEL": "info"},
            start_new_session=True,  # its own process group: killpg takes every worker
        )
    wait_ready(proc, log, b"gateway: ready")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000, help="attempted per round")
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random()
    with tempfile.TemporaryDirectory() as tmp:
        config_file, port, db, rcpt = prepare_gateway(Path(tmp))
        acked: list[str] = []
        lock = threading.Lock()
        for round_ in range(args.rounds):
            proc = serve(config_file, round_)
            killed = threading.Event()
            counter = iter(range(args.messages))

            def client(
                counter: Iterator[int] = counter,
                killed: threading.Event = killed,
                round_: int = round_,
            ) -> None:
                for i in counter:
                    if killed.is_set():
                        return
                    message_id = f"r{round_}-{i}@client.example"
                    raw = (
                        f"From: carol@client.example\r\nTo: bob@acme.example\r\n"
                        f"Subject: crash {round_}-{i}\r\nMessage-ID: <{message_id}>\r\n\r\n"
                        + "x" * 900
                        + "\r\n"
                    ).encode()
                    try:
                        with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
                            smtp.sendmail("carol@client.example", [rcpt], raw)
                    except (OSError, smtplib.SMTPException):
                        return
                    with lock:
                        acked.append(message_id)

            threads = [threading.Thread(target=client) for _ in range(args.sessions)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 2.5))  # a random moment of the round
            os.killpg(proc.pid, signal.SIGKILL)  # supervisor and workers at once
            killed.set()
            proc.wait()
            for thread in threads:
                thread.join()
        proc = serve(config_file, args.rounds)  # restart: the pipeline finishes everything
        while True:
            with db.read() as session:
                pending = session.scalar(
                    select(func.count()).select_from(Sighting).where(Sighting.state == "pending")
                )
            if not pending:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        with db.read() as session:
            ids = list(session.scalars(select(Message.message_id_header)))
            twice = session.scalar(
                select(func.count()).select_from(
                    select(MessageContact.message_id)
                    .group_by(MessageContact.message_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        db.dispose()
    stored = set(ids)
    table = Table(
        "rounds",
        "sessions",
        "acknowledged",
        "acknowledged but missing",
        "messages stored twice",
        "attached twice",
        "stored, never acknowledged",
        title="kill -9 during dropbox deliveries",
    )
    table.add_row(
        str(args.rounds),
        str(args.sessions),
        str(len(acked)),
        str(len(set(acked) - stored)),
        str(len(ids) - len(stored)),
        str(twice),
        str(len(stored - set(acked))),
    )
    Console().print(table)
    if set(acked) - stored:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
