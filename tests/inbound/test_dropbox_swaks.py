"""swaks, a real SMTP client, against the dropbox role (plain, STARTTLS, pipelining)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from sqlalchemy import select

from gateway.models import RawMessage, Sighting
from tests.helpers.dropbox import Dropbox
from tests.helpers.pipeline import count

SWAKS = shutil.which("swaks")
# CI installs swaks (.ci/run) and must run these; elsewhere they need `apt-get install swaks`.
pytestmark = pytest.mark.skipif(
    SWAKS is None and not os.environ.get("CI"), reason="swaks is not installed"
)


def swaks(dropbox: Dropbox, *args: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS is not None
    return subprocess.run(
        [
            SWAKS,
            "--server",
            "127.0.0.1",
            "--port",
            str(dropbox.port),
            "--helo",
            "client.test",
            "--timeout",
            "20",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("mode", [[], ["--tls"], ["--pipeline"], ["--tls", "--pipeline"]])
def test_swaks_delivers_a_verified_message(dropbox: Dropbox, db, mode: list[str]) -> None:
    rcpt = dropbox.address("bob@acme.com")
    result = swaks(
        dropbox,
        "--from",
        "bob@acme.com",
        "--to",
        rcpt,
        "--header",
        "From: Bob <bob@acme.com>",
        "--header",
        "Subject: via swaks",
        *mode,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Message accepted" in result.stdout
    if "--tls" in mode:
        assert "TLS started" in result.stdout
    with db.session() as session:
        data = session.scalars(select(RawMessage.data)).one()
        assert b"Subject: via swaks" in data
        assert session.scalars(select(Sighting.source)).one() == "dropbox"


def test_swaks_relay_attempt_is_refused(dropbox: Dropbox, db) -> None:
    result = swaks(dropbox, "--from", "bob@acme.com", "--to", "victim@example.org")
    assert result.returncode != 0
    assert "550 5.7.1 Relaying denied" in result.stdout
    assert count(db, RawMessage) == 0


def test_swaks_spoofed_sender_is_refused(dropbox: Dropbox, db) -> None:
    result = swaks(
        dropbox,
        "--from",
        "ceo@other.test",
        "--to",
        dropbox.address("bob@acme.com"),
        "--header",
        "From: bob@acme.com",
    )
    assert result.returncode != 0
    assert "550 5.7.1 Sender not verified" in result.stdout
    assert count(db, RawMessage) == 0
