"""`gateway user token create|list|revoke`, and a token used on `gateway serve`'s
submission port."""

from __future__ import annotations

import re
import smtplib
import ssl
from pathlib import Path

from sqlalchemy import func, select

from gateway.config import load_config
from gateway.db import Database
from gateway.models import OutboundMessage
from tests.helpers.cli import Run
from tests.helpers.serve import start


def test_tokens_are_shown_once_listed_by_id_and_revoked(initialized: Run) -> None:
    created = initialized("user", "token", "create", "bob@acme.com", "--label", "our CRM")
    assert created.code == 0
    token = re.search(r"gwt_[a-z0-9]{12}_\S{43}", created.out)
    assert token is not None
    public_id = token.group(0).split("_")[1]
    listed = initialized("user", "token", "list", "bob@acme.com", "--json")
    assert public_id in listed.out and "our CRM" in listed.out
    secret = token.group(0)[len("gwt_") + 13 :]  # after gwt_<12 hex>_ (it may hold "_")
    assert len(secret) == 43 and secret not in listed.out  # never the secret again
    assert initialized("user", "token", "revoke", public_id).code == 0
    assert public_id not in initialized("user", "token", "list", "bob@acme.com").out
    again = initialized("user", "token", "revoke", public_id)
    assert again.code != 0 and "no token" in again.err


def test_serve_with_the_submission_role_queues_mail(initialized: Run, config_file: Path) -> None:
    token = re.search(r"gwt_\S+", initialized("user", "token", "create", "bob@acme.com").out)
    assert token is not None
    before = set(config_file.parent.glob("serve-*.log"))
    proc = start(
        config_file,
        "--roles",
        "submission",
        env={"GATEWAY_SUBMISSION__LISTEN": "127.0.0.1:0"},
    )
    try:
        log = max(
            set(config_file.parent.glob("serve-*.log")) - before, key=lambda p: p.stat().st_mtime
        )
        port = re.search(rb"submission: listening on [\d.]+:(\d+)", log.read_bytes())
        assert port, log.read_text()
        insecure = ssl.create_default_context()
        insecure.check_hostname = False  # `gateway init` made a self-signed certificate
        insecure.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", int(port.group(1)), timeout=30) as client:
            client.starttls(context=insecure)
            client.login("bob@acme.com", token.group(0))
            client.sendmail(
                "bob@acme.com", ["carol@client.com"], b"From: bob@acme.com\r\n\r\nhello\r\n"
            )
    finally:
        proc.terminate()
        assert proc.wait(timeout=40) == 0
    db = Database(load_config(config_file).database_url)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
    db.dispose()


def test_account_tokens_have_scopes_and_are_listed_and_revoked(initialized: Run) -> None:
    created = initialized("token", "create", "--scope", "send", "--scope", "read", "--label", "CRM")
    assert created.code == 0, created.err
    token = re.search(r"gwt_[a-z0-9]{12}_\S{43}", created.out)
    assert token is not None and "(read, send)" in created.out
    public_id = token.group(0).split("_")[1]
    [listed] = initialized("token", "list", "--json").json()
    assert listed["id"] == public_id and listed["scopes"] == ["read", "send"]
    assert listed["label"] == "CRM" and listed["last_used_at"] is None
    assert token.group(0)[len("gwt_") + 13 :] not in initialized("token", "list").out
    assert public_id not in initialized("user", "token", "list", "bob@acme.com").out
    assert initialized("token", "revoke", public_id).code == 0
    assert initialized("token", "list", "--json").json() == []
    again = initialized("token", "revoke", public_id)
    assert again.code == 1 and "no account token" in again.err
