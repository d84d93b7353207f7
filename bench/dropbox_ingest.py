"""Benchmark: N parallel SMTP clients sending 10 KB messages to dropbox addresses.

Prints messages/s for
  - ceiling:  a bare aiosmtpd server that accepts and discards (bench/sink_server.py),
  - bare commit: the same server committing each message to SQLite (WAL,
              synchronous=FULL) before its 250: the simplest durable server,
  - dropbox:  `gateway serve` (dropbox + pipeline roles, SQLite) with each
              [serve] workers count given (the curve), acknowledged messages/s,
              and messages/s until the pipeline has attached them all,
  - ratios against the ceiling measured in the same run.
Sender verification is off here (policy trust-network for loopback); its cost is
measured separately with --verify against a loopback DNS zone server.

    .venv/bin/python -m bench.dropbox_ingest --clients 20 --messages 2000 [--dead-webhook]

With --dead-webhook each gateway run is repeated while the webhooks role keeps
retrying an endpoint that never answers: the mail flow's figures must not change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from gateway.accounts import add_user, create_account, dropbox_address
from gateway.config import load_config
from gateway.contacts import add_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.models import Account, Sighting
from gateway.tls import ensure_self_signed
from gateway.vault import Vault, ensure_key_file
from gateway.webhooks import add_endpoint

BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n" * 135


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def client(port: int, rcpt: str, count: int, tag: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _reply(reader)
    writer.write(b"EHLO bench.test\r\n")
    await _reply(reader)
    ok = 0
    for i in range(count):
        message = (
            f"From: Carol <carol@client.example>\r\nTo: Bob <bob@acme.example>\r\n"
            f"Subject: bench {tag}-{i}\r\nMessage-ID: <{tag}-{i}@client.example>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{BODY}.\r\n"
        ).encode()
        # One command at a time (the ceiling server does not offer PIPELINING).
        for command in ("MAIL FROM:<carol@client.example>", f"RCPT TO:<{rcpt}>", "DATA"):
            writer.write(command.encode() + b"\r\n")
            await _reply(reader)
        writer.write(message)
        if (await _reply(reader)).startswith(b"250"):
            ok += 1
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    return ok


CLIENT = "asyncio"  # or "smtp-source" (Postfix's load generator), set by --client


async def load(port: int, rcpt: str, clients: int, messages: int) -> tuple[int, float]:
    if CLIENT == "smtp-source":
        return smtp_source(port, rcpt, clients, messages)
    per = messages // clients
    started = time.perf_counter()
    results = await asyncio.gather(*(client(port, rcpt, per, f"c{n}") for n in range(clients)))
    return sum(results), time.perf_counter() - started


def smtp_source(port: int, rcpt: str, clients: int, messages: int) -> tuple[int, float]:
    """Postfix's smtp-source: one message per session, `clients` sessions at a time."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            "smtp-source",
            "-l",
            "10240",
            "-m",
            str(messages),
            "-s",
            str(clients),
            "-f",
            "carol@client.example",
            "-t",
            rcpt,
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return messages, time.perf_counter() - started


def wait_ready(proc: subprocess.Popen[bytes], log: Path, marker: bytes) -> None:
    deadline = time.monotonic() + 60
    while marker not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)


def ceiling(clients: int, messages: int, tmp: Path, commit: bool = False) -> float:
    """The bare sink's msg/s; with `commit`, the bare sink that commits each message."""
    port = free_port()
    log = tmp / "sink.log"
    extra = ["--commit", str(tmp / "sink.db")] if commit else []
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sink_server", str(port), *extra], stdout=out
        )
    try:
        wait_ready(proc, log, b"ready")
        ok, elapsed = asyncio.run(load(port, "x@sink.example", clients, messages))
    finally:
        proc.terminate()
        proc.wait()
    return ok / elapsed


def prepare_gateway(tmp: Path) -> tuple[Path, int, Database, str]:
    """A config (loopback trusted, no per-IP caps), a database with one user whose
    dropbox receives the load and one contact: (config file, port, db, dropbox address)."""
    port = free_port()
    config_file = tmp / "config.toml"
    config_file.write_text(
        '[web]\nlisten = "127.0.0.1:0"\n'
        f'[dropbox]\nlisten = "127.0.0.1:{port}"\npolicy = "trust-network"\n'
        'trusted_networks = ["127.0.0.0/8"]\nmax_connections_per_ip = 10000\n'
        'connections_per_minute_per_ip = 1000000\n[log]\nlevel = "warning"\n'
    )
    config = load_config(config_file, environ={})
    ensure_self_signed(config.tls_cert_file, config.tls_key_file, "localhost")
    ensure_key_file(config.secret_key_file)
    db = Database(config.database_url)
    db.migrate()
    with db.session() as session:
        account = create_account(session, "bench")
        user, _ = add_user(session, config, account, "bob@acme.example")
        rcpt = dropbox_address(config, user)
        directory = AccountDirectory.load(session, account, config)
        add_contact(session, directory, ["carol@client.example"], "Carol", "lower")
    return config_file, port, db, rcpt


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(serve_pid: int, log: Path) -> dict[str, int]:
    """The gateway's processes by name: the supervisor (or the one process) and its workers."""
    found = {"serve": serve_pid}
    for name, pid in re.findall(rb"started worker (\S+) \(pid (\d+)\)", log.read_bytes()):
        found[name.decode()] = int(pid)
    return found


def dead_endpoint(config_file: Path, db: Database) -> subprocess.Popen[bytes]:
    """A webhook endpoint of the account that accepts connections and never answers
    (bench/webhook_receiver.py --dead): every event's delivery hangs until [webhooks]
    timeout, then is retried."""
    port = free_port()
    with config_file.open("a", encoding="utf-8") as handle:
        handle.write('[security]\nallowed_private_networks = ["127.0.0.0/8"]\n')
    config = load_config(config_file, environ={})
    with db.session() as session:
        account = session.scalars(select(Account)).one()
        _, secret = add_endpoint(
            session,
            config,
            Vault.load(config.secret_key_file),
            account.id,
            f"http://127.0.0.1:{port}/hook",
        )
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_receiver", str(port), secret, "--dead"],
        stdout=subprocess.PIPE,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == b"ready"
    return receiver


def gateway(
    clients: int, messages: int, tmp: Path, workers: int, dead: bool = False
) -> tuple[float, float, dict[str, float]]:
    """(acknowledged msg/s, attached msg/s, CPU ms per message of each process); with
    `dead`, while the webhooks role retries an endpoint that never answers."""
    config_file, port, db, rcpt = prepare_gateway(tmp)
    receiver = dead_endpoint(config_file, db) if dead else None
    env = {
        **os.environ,
        "GATEWAY_LOG__LEVEL": "info",
        "GATEWAY_PIPELINE__POLL_INTERVAL": "0.05",
        "GATEWAY_SERVE__WORKERS": str(workers),
    }
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_file), "serve"],
            stderr=out,
            env=env,
        )
    procs = [proc]
    wait_ready(proc, log, b"gateway: ready")
    pids = processes(proc.pid, log)
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    try:
        started = time.perf_counter()
        ok, elapsed = asyncio.run(load(port, rcpt, clients, messages))
        while True:
            with db.session() as session:
                pending = session.scalar(
                    select(func.count()).select_from(Sighting).where(Sighting.state == "pending")
                )
            if not pending:
                break
            time.sleep(0.05)
        attached = time.perf_counter() - started
        cpu = {name: (cpu_seconds(pid) - cpu[name]) * 1000 / ok for name, pid in pids.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        if receiver is not None:
            receiver.terminate()
            receiver.wait()
        db.dispose()
    return ok / elapsed, ok / attached, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--client", choices=["asyncio", "smtp-source"], default="asyncio")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3],
        help="[serve] workers of each gateway run (0: one process for every role)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds (ceiling, then each gateway run, in turn); the table shows medians",
    )
    parser.add_argument(
        "--dead-webhook",
        action="store_true",
        help="each gateway run again while an endpoint that never answers is retried",
    )
    args = parser.parse_args()
    global CLIENT
    CLIENT = args.client
    console = Console(width=200)
    table = Table(
        "clients",
        "workers",
        "ceiling msg/s",
        "bare commit msg/s (/ ceiling)",
        "dropbox 250 msg/s",
        "attached msg/s",
        "attached / ceiling",
        "CPU ms/msg by process",
        title=f"dropbox ingest, {args.messages:,} x 10 KB messages on SQLite ({args.client}); "
        f"median of {args.repeat} round(s), ratio range in brackets",
    )
    for clients in args.clients:
        tops: list[float] = []
        floors: list[float] = []
        variants = [(w, False) for w in args.workers]
        if args.dead_webhook:
            variants += [(w, True) for w in args.workers]
        runs: dict[tuple[int, bool], list[tuple[float, float, dict[str, float]]]] = {
            v: [] for v in variants
        }
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                tops.append(ceiling(clients, args.messages, Path(tmp)))
            with tempfile.TemporaryDirectory() as tmp:
                floors.append(ceiling(clients, args.messages, Path(tmp), commit=True))
            for workers, dead in variants:
                with tempfile.TemporaryDirectory() as tmp:
                    runs[(workers, dead)].append(
                        gateway(clients, args.messages, Path(tmp), workers, dead)
                    )
        floor_ratio = statistics.median(f / t for f, t in zip(floors, tops, strict=True))
        for (workers, dead), results in runs.items():
            ratios = [attached / top for top, (_, attached, _) in zip(tops, results, strict=True)]
            cpu = {
                name: statistics.median(r[2].get(name, 0.0) for r in results)
                for name in results[0][2]
            }
            table.add_row(
                str(clients),
                (str(workers) if workers else "0 (one process)")
                + (", dead webhook" if dead else ""),
                f"{statistics.median(tops):,.0f}",
                f"{statistics.median(floors):,.0f} ({floor_ratio:.2f})",
                f"{statistics.median(r[0] for r in results):,.0f}",
                f"{statistics.median(r[1] for r in results):,.0f}",
                f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]",
                " ".join(f"{name} {ms:.2f}" for name, ms in cpu.items()),
            )
        console.log(f"{clients} clients done")
    console.print(table)


if __name__ == "__main__":
    main()
