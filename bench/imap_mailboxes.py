"""What the IMAP benchmarks share: a Dovecot mailbox filled with prose (a share of it
from contacts), a cold header cache, a contender run in a process of its own and
measured, and the bytes the server sent."""

from __future__ import annotations

import mailbox
import os
import random
import re
import subprocess
import sys
import time

from tests.peers.dovecot import Dovecot

CONTACTS = 400


def contact(i: int) -> str:
    return f"person{i}@client{i % 50}.example"


def prose(rng: random.Random, size: int = 4 * 2**20) -> str:
    """Text of random words in lines of about 70 characters, which deflate shrinks about
    as much as real mail (2-3 times): each message body is a slice of it at a random
    place. (One paragraph repeated would shrink a hundred times and flatter COMPRESS.)"""
    letters, frequency = "etaoinshrdlcumwfgypbvkjxqz", range(26, 0, -1)  # as in English
    words = ["".join(rng.choices(letters, frequency, k=rng.randint(2, 9))) for _ in range(5000)]
    zipf = [1 / rank for rank in range(1, len(words) + 1)]  # a few words used a lot
    lines, length = [], 0
    while length < size:
        line = " ".join(rng.choices(words, zipf, k=11)) + ".\r\n"
        lines.append(line)
        length += len(line)
    return "".join(lines)


def fill_maildir(server: Dovecot, user: str, count: int, share: float, seed: int) -> int:
    """Write `count` messages straight into the user's Maildir; returns how many involve
    a contact."""
    rng = random.Random(seed)
    text = prose(rng)
    root = server.root / "mail" / user / "Maildir"
    box = mailbox.Maildir(root, create=True)
    matched = 0
    now = time.time()
    for i in range(count):
        involved = rng.random() < share
        matched += involved
        sender = contact(rng.randrange(CONTACTS)) if involved else f"s{i}@stranger{i % 997}.example"
        size = rng.randrange(5_000, 20_000)
        start = rng.randrange(len(text) - size)
        body = text[start : start + size]
        day = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now - i * 60))
        raw = (
            f"From: Someone <{sender}>\r\nTo: Bob <bob@acme.example>\r\n"
            f"Cc: other{i % 13}@elsewhere.example\r\nSubject: message {i}\r\n"
            f"Date: {day}\r\nMessage-ID: <m{i}.{seed}@bench.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        ).encode()
        key = box.add(raw)
        path = root / "new" / key
        os.utime(path, (now - i * 60, now - i * 60))
    subprocess.run(["chown", "-R", "nobody:nogroup", str(server.root / "mail" / user)], check=True)
    return matched


def cold_cache(server: Dovecot, user: str) -> None:
    """Drop Dovecot's cache of header fields and sizes, so that no contender reads what
    an earlier one made the server cache (the index of UIDs stays)."""
    for path in (server.root / "mail" / user / "Maildir").glob("dovecot.index.cache"):
        path.unlink()


def run_measured(code: str, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stdout) of `python -c code`."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"exit {proc.returncode}: {out}")
    return elapsed, usage.ru_maxrss, out


def server_bytes(server: Dovecot, user: str, since: int) -> int:
    """Bytes the server sent to clients of `user` in sessions logged after offset `since`."""
    log = (server.root / "dovecot.log").read_text()[since:]
    return sum(
        int(m.group(1)) for m in re.finditer(rf"imap\({re.escape(user)}\).*? out=(\d+)", log)
    )


def log_size(server: Dovecot) -> int:
    return len((server.root / "dovecot.log").read_text())
