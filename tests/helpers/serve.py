"""`gateway serve` as a process of its own, started and waited for until ready."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

READY_TIMEOUT = 30.0


def start(
    config_file: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `gateway serve` in a process group of its own (os.killpg kills it and all
    its workers); its log goes to a file (a full pipe would block it)."""
    log = config_file.with_name(f"serve-{time.monotonic_ns()}.log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_file), "serve", *extra],
            stderr=sink,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if b"gateway: ready" in log.read_bytes():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise AssertionError(f"gateway serve did not start: {log.read_text(errors='replace')}")


def dropbox_port(log_dir: Path, proc_log_before: set[Path]) -> int:
    newest = max(
        set(log_dir.glob("serve-*.log")) - proc_log_before, key=lambda p: p.stat().st_mtime
    )
    found = re.search(rb"dropbox: listening on [\d.]+:(\d+)", newest.read_bytes())
    assert found, newest.read_text()
    return int(found.group(1))
