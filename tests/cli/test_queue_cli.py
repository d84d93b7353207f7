"""`gateway queue list|show|retry|cancel` and `gateway user route`."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.accounts import get_user
from gateway.config import load_config
from gateway.db import Database
from gateway.mail_queue import enqueue
from outbound.hygiene import prepare
from tests.helpers.cli import Run


def queue_one(config_file: Path, recipients: list[str]) -> int:
    config = load_config(config_file)
    db = Database(config.database_url)
    with db.read() as session:
        user = get_user(session, config, "bob@acme.com")
        session.expunge(user)
    raw = b"From: bob@acme.com\r\nSubject: hi\r\n\r\nhello\r\n"
    queued = enqueue(db, user, "bob@acme.com", recipients, prepare(raw), "smtp").id
    db.dispose()
    return queued


def test_the_queue_commands(initialized: Run, config_file: Path) -> None:
    first = queue_one(config_file, ["carol@client.test", "dan@client.test"])
    listed = json.loads(initialized("queue", "list", "--json").out)
    assert [m["id"] for m in listed] == [first]
    assert [r["state"] for r in listed[0]["recipients"]] == ["queued", "queued"]
    shown = initialized("queue", "show", str(first))
    assert shown.code == 0 and "carol@client.test" in shown.out
    assert "2 recipient(s) cancelled" in initialized("queue", "cancel", str(first)).out
    assert json.loads(initialized("queue", "list", "--state", "cancelled", "--json").out)
    assert "0 recipient(s) queued again" in initialized("queue", "retry", str(first)).out
    missing = initialized("queue", "show", "999")
    assert missing.code != 0 and "no queued message 999" in missing.err


def test_user_route(initialized: Run) -> None:
    assert initialized("user", "route", "bob@acme.com", "direct").code == 0
    refused = initialized("user", "route", "bob@acme.com", "relay")  # no relay_url set
    assert refused.code != 0 and "relay_url" in refused.err
    no_mailbox = initialized("user", "route", "bob@acme.com", "mailbox")
    assert no_mailbox.code != 0 and "no connected mailbox" in no_mailbox.err
