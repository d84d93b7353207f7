"""`gateway serve` refusing to start: one line that says what to change, no traceback,
a non-zero exit; and what it says when it does start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import Run
from tests.helpers.serve import start


def serve(config_file: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config_file), "serve", *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize(
    ("role", "variable", "key"),
    [
        ("dropbox", "GATEWAY_DROPBOX__LISTEN", "dropbox.listen"),
        ("web", "GATEWAY_WEB__LISTEN", "web.listen"),
        ("submission", "GATEWAY_SUBMISSION__LISTEN", "submission.listen"),
    ],
)
def test_a_port_in_use_is_one_line_naming_the_role_address_and_key(
    initialized: Run, config_file: Path, workers: str, role: str, variable: str, key: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        where = f"127.0.0.1:{taken.getsockname()[1]}"
        result = serve(
            config_file,
            {variable: where, "GATEWAY_SERVE__WORKERS": workers},
            "--roles",
            f"pipeline,{role}",
        )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("gateway:")]
    assert line == (
        f"gateway: config error in environment variable {variable}: {key}: "
        f"the {role} role cannot listen on {where}: address already in use"
    )


def test_unknown_role_is_refused(initialized: Run) -> None:
    result = initialized("serve", "--roles", "pipeline,teleport")
    assert result.code == 2 and "unknown role 'teleport'" in result.err


def test_serve_runs_every_role_by_default_and_says_what_listens_where(
    initialized: Run, config_file: Path
) -> None:
    before = set(config_file.parent.glob("serve-*.log"))
    proc = start(config_file, env={"GATEWAY_SUBMISSION__LISTEN": "127.0.0.1:0"})
    try:
        [log] = set(config_file.parent.glob("serve-*.log")) - before
        lines = [x for x in log.read_text().splitlines() if x.startswith("gateway: ")]
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    roles = [line.split(":")[1].strip() for line in lines[:10]]
    assert roles == [
        "dropbox",
        "pipeline",
        "imap",
        "web",
        "submission",
        "delivery",
        "webhooks",
        "dns",
        "calendar",
        "housekeeping",
    ]
    assert "on 127.0.0.1:0 (dropbox.listen)" in lines[0]
    assert "on 127.0.0.1:0 (web.listen)" in lines[3]
    assert "on 127.0.0.1:0 (submission.listen)" in lines[4]
    assert "outbound mail is held: nothing leaves this machine" in lines[10]
    assert lines[-1] == "gateway: ready"
