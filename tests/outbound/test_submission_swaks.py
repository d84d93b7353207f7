"""swaks against the submission port: STARTTLS + AUTH PLAIN/LOGIN, implicit TLS, and the
refusals a misconfigured client meets."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from sqlalchemy import func, select

from gateway.models import OutboundMessage
from tests.helpers.outbound import Submission

SWAKS = shutil.which("swaks")
# CI installs swaks (.ci/run) and must run these; elsewhere they need `apt-get install swaks`.
pytestmark = pytest.mark.skipif(
    SWAKS is None and not os.environ.get("CI"), reason="swaks is not installed"
)


def swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS is not None
    return subprocess.run(
        [SWAKS, "--server", "127.0.0.1", "--port", str(port), "--helo", "crm.test", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def queued(submission: Submission) -> int:
    with submission.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(OutboundMessage)) or 0)


@pytest.mark.parametrize(
    "mode",
    [["--tls", "--auth", "PLAIN"], ["--tls", "--auth", "LOGIN"], ["--tlsc", "--auth", "PLAIN"]],
)
def test_swaks_sends_through_submission(submission: Submission, mode: list[str]) -> None:
    port = submission.tls_port if "--tlsc" in mode else submission.port
    result = swaks(
        port,
        *mode,
        "--auth-user",
        "bob@acme.com",
        "--auth-password",
        submission.token,
        "--from",
        "bob@acme.com",
        "--to",
        "carol@client.com",
        "--header",
        "From: Bob <bob@acme.com>",
        "--header",
        "Subject: via swaks",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Queued as" in result.stdout
    assert queued(submission) == 1


def test_swaks_without_tls_cannot_authenticate(submission: Submission) -> None:
    result = swaks(
        submission.port,
        "--auth",
        "PLAIN",
        "--auth-user",
        "bob@acme.com",
        "--auth-password",
        submission.token,
        "--from",
        "bob@acme.com",
        "--to",
        "carol@client.com",
    )
    assert result.returncode != 0
    assert queued(submission) == 0


def test_swaks_without_auth_is_refused_the_relay(submission: Submission) -> None:
    result = swaks(
        submission.port, "--tls", "--from", "spam@example.org", "--to", "victim@example.net"
    )
    assert result.returncode != 0
    assert "530 5.7.0" in result.stdout
    assert queued(submission) == 0
