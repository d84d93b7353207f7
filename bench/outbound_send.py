"""Benchmark: mail sent by the CRM through the gateway, end to end, on loopback.

`gateway serve --roles submission,delivery` (SQLite; the submission port in its
background worker, `--processes` delivery workers, one per core by default) takes
10 KB messages over SMTP submission (STARTTLS + AUTH with an API token) from N
client threads, DKIM-signs them (RSA-2048, each signature verified by dkimpy) and
relays them to a capturing aiosmtpd sink in a process of its own (the relay route,
STARTTLS + AUTH). In the same run, the baseline: dkimpy's bare dkim.sign() of the
same messages. Prints messages/s (last one received by the sink / time since the
first was submitted), the ratio to dkimpy, the CPU time per message of every
process taking part (and so the rate with every core busy), and the queue's pickup
latency at idle (a message's 250 from submission to its arrival at the sink, one
message at a time).

    .venv/bin/python -m bench.outbound_send --messages 2000 --clients 4
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dkim
import trustme
from rich.console import Console
from rich.table import Table

from bench.dkim_sign import messages
from outbound.dkim_keys import new_key_pair
from tests.peers.smtp_sink import Sink


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CountingSink(Sink):
    """The relay: notes each arrival's time in a file (and keeps the first message, to
    check it). It runs in a process of its own, so that it does not share Python's GIL
    with the client threads of the benchmark."""

    def __post_init__(self) -> None:
        self.log: Any = None
        self.first: bytes | None = None
        super().__post_init__()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.log.write(f"{time.monotonic()}\n")
        self.log.flush()
        if self.first is None:
            self.first = envelope.original_content
            Path(self.log.name).with_name("first.eml").write_bytes(envelope.original_content)
        return "250 2.0.0 OK"


def relay_process(folder: Path) -> None:
    """`--relay FOLDER`: the sink, until killed; prints its port, then writes one line a
    message to FOLDER/arrivals and the count of sign-ins to FOLDER/sessions."""
    authority = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(tls)
    sink = CountingSink(tls=tls, login=("relay", "relaypw"))
    sink.log = (folder / "arrivals").open("a")
    print(sink.port, flush=True)
    while True:
        time.sleep(0.2)
        (folder / "sessions").write_text(str(sink.authentications))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_pids(parent: int) -> dict[int, str]:
    """The `gateway serve` worker processes: pid -> its name (`python -m gateway.worker
    NAME`)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and b"gateway.worker" in argv:
            name = argv[argv.index(b"gateway.worker") + 1].decode()
            found[int(stat.parent.name)] = f"worker {name}"
    return found


class Relay:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.outbound_send", "--relay", str(folder)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def arrivals(self) -> list[float]:
        path = self.folder / "arrivals"
        return [float(line) for line in path.read_text().split()] if path.exists() else []

    def count(self) -> int:
        path = self.folder / "arrivals"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def first(self) -> bytes:
        return (self.folder / "first.eml").read_bytes()

    def sessions(self) -> int:
        time.sleep(0.3)
        return int((self.folder / "sessions").read_text())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def gateway(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="[outbound] concurrency")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="[outbound] processes"
    )
    parser.add_argument("--relay", type=Path, help=argparse.SUPPRESS)  # the sink's process
    args = parser.parse_args()
    if args.relay is not None:
        relay_process(args.relay)
        return
    console = Console(width=160)
    mail = messages(args.messages)

    tmp = Path(tempfile.mkdtemp())
    (tmp / "relay").mkdir()
    sink = Relay(tmp / "relay")
    proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        config = tmp / "config.toml"
        config.write_text(
            '[paths]\nvar_dir = "var"\n[log]\nlevel = "warning"\n'
            f'[submission]\nlisten = "127.0.0.1:{port}"\nmax_messages_per_hour = 0\n'
            f'[outbound]\ndefault_route = "relay"\nrelay_url = "smtp://relay:relaypw@127.0.0.1:{sink.port}"\n'
            f"relay_tls_verify = false\nconcurrency = {args.concurrency}\n"
            f"processes = {args.processes}\n"
            '[serve]\nroles = ["submission", "delivery"]\n'
            '[security]\nallowed_private_networks = ["127.0.0.0/8"]\n'
        )
        gateway(config, "init")
        gateway(config, "user", "add", "bob@acme.com", "--name", "Bob")
        token = re.search(r"gwt_\S+", gateway(config, "user", "token", "create", "bob@acme.com"))
        assert token is not None
        gateway(config, "dkim", "generate", "acme.com")
        log = (tmp / "serve.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
            stderr=log,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def client(chunk: list[bytes]) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.starttls(context=insecure)
                smtp.login("bob@acme.com", token.group(0))
                for raw in chunk:
                    smtp.sendmail("bob@acme.com", ["carol@client.example"], raw)

        workers = worker_pids(proc.pid)
        watched = {
            os.getpid(): "bench clients",
            sink.proc.pid: "relay sink",
            proc.pid: "supervisor",
        }
        watched.update(workers)
        cpu_before = {pid: cpu_seconds(pid) for pid in watched}
        started = time.monotonic()
        chunks = [mail[n :: args.clients] for n in range(args.clients)]
        threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submitted = time.monotonic()
        while sink.count() < len(mail) and time.monotonic() - started < 120:
            time.sleep(0.01)
        if sink.count() < len(mail):
            queue = gateway(config, "queue", "list", "--state", "deferred")
            raise SystemExit(
                f"{sink.count()} of {len(mail)} arrived\n{queue[-2000:]}\n"
                + (tmp / "serve.log").read_text()[-3000:]
            )
        elapsed = max(sink.arrivals()) - started
        cpu_used = {pid: cpu_seconds(pid) - cpu_before[pid] for pid in watched}
        sessions = sink.sessions()
        assert sink.first().startswith(b"DKIM-Signature:")

        latencies = []
        for raw in mail[: args.latency_samples]:
            time.sleep(0.3)  # idle
            before = sink.count()
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.starttls(context=insecure)
                smtp.login("bob@acme.com", token.group(0))
                smtp.sendmail("bob@acme.com", ["carol@client.example"], raw)
                accepted = time.monotonic()
            while sink.count() == before and time.monotonic() - accepted < 10:
                time.sleep(0.001)
            latencies.append(sink.arrivals()[-1] - accepted)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)

    private = new_key_pair("rsa").private_pem.encode()
    signing = time.perf_counter()
    for raw in mail:
        dkim.sign(raw, b"s1", b"acme.com", private, canonicalize=(b"relaxed", b"relaxed"))
    bare = len(mail) / (time.perf_counter() - signing)

    rate = len(mail) / elapsed
    table = Table(
        "",
        "value",
        title=(
            f"{len(mail)} x 10 KB, {args.clients} clients, {args.processes} delivery process(es)"
            f" x {args.concurrency}, {os.cpu_count()} CPU cores"
        ),
    )
    table.add_row("dkimpy bare dkim.sign(), msg/s", f"{bare:,.0f}")
    table.add_row("gateway end to end (submit -> sign -> relay), msg/s", f"{rate:,.0f}")
    table.add_row("end to end / dkimpy", f"{rate / bare:.2f}x")
    table.add_row("all submitted after, s", f"{submitted - started:.1f}")
    table.add_row("SMTP sessions the relay saw signed in", f"{sessions:,}")
    for pid, what in sorted(watched.items(), key=lambda item: item[1]):
        table.add_row(f"CPU per message: {what}, ms", f"{cpu_used[pid] / len(mail) * 1000:.2f}")
    per_message = sum(cpu_used.values()) / len(mail)
    table.add_row("CPU per message: all of them, ms", f"{per_message * 1000:.2f}")
    cores = os.cpu_count() or 1
    table.add_row(
        f"ceiling with {cores} cores busy, msg/s (/ dkimpy)",
        f"{cores / per_message:,.0f} ({cores / per_message / bare:.2f}x)",
    )
    table.add_row(
        "pickup latency at idle, median / max, ms",
        f"{statistics.median(latencies) * 1000:.0f} / {max(latencies) * 1000:.0f}",
    )
    console.print(table)


if __name__ == "__main__":
    main()
