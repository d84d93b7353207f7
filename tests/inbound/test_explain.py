"""Why is this mail (not) here? `gateway messages why`, GET /api/v1/explain and
gateway.explain answer each reason from what was recorded: attached (by which
address in which header), not on the contact, a duplicate Message-ID, waiting for
the pipeline, held for approval, refused by the dropbox, scanned but not fetched,
backfill pending, and never seen; a member sees only their own mail."""

from __future__ import annotations

import httpx
import pytest

from gateway.config import Config
from gateway.db import Database
from gateway.explain import Explanation, explain
from gateway.pipeline import Pipeline
from gateway.tokens import create_account_token, create_token
from gateway.vault import ensure_key_file
from tests.helpers.dropbox import Dropbox, from_bob, refused, send
from tests.helpers.imap import connect_mailbox, contacts, fill, sync
from tests.helpers.web import running_web
from tests.peers.dovecot import ImapUser


def why(db: Database, config: Config, account_id: int, mid: str, **kw: object) -> Explanation:
    with db.read() as session:
        return explain(session, config, account_id, mid, **kw)  # type: ignore[arg-type]


def test_attached_by_an_address_in_a_header_or_not_on_that_contact(
    dropbox: Dropbox, db: Database, account_id: int
) -> None:
    config = dropbox.config
    contacts(db, config, account_id, "carol@client.com")
    send(
        dropbox,
        from_bob(message_id="<offer-1@acme.com>"),
        "bob@acme.com",
        dropbox.address("bob@acme.com"),
    )
    Pipeline(db, config).run_pending()
    found = why(db, config, account_id, "offer-1@acme.com", contact="carol@client.com")
    [first] = found.findings
    assert first.decision == "attached" and first.where == "dropbox"
    assert "carol@client.com in to" in first.reason
    other = why(db, config, account_id, "<offer-1@acme.com>", contact="dan@client.com")
    assert other.findings[0].decision == "not_on_contact"
    assert "in none of its headers" in other.answer


def test_a_duplicate_message_id_and_a_message_waiting_for_the_pipeline(
    dropbox: Dropbox, db: Database, account_id: int
) -> None:
    config = dropbox.config
    contacts(db, config, account_id, "carol@client.com")
    to = dropbox.address("bob@acme.com")
    send(dropbox, from_bob(message_id="<same@acme.com>", subject="One"), "bob@acme.com", to)
    waiting = why(db, config, account_id, "same@acme.com")
    assert [f.decision for f in waiting.findings] == ["pending"]
    Pipeline(db, config).run_pending()
    send(dropbox, from_bob(message_id="<same@acme.com>", subject="Two"), "bob@acme.com", to)
    Pipeline(db, config).run_pending()
    decisions = [f.decision for f in why(db, config, account_id, "same@acme.com").findings]
    assert decisions.count("attached") == 2 and "duplicate" in decisions


def test_refused_by_the_dropbox_with_the_sender_checks(
    dropbox: Dropbox, db: Database, account_id: int
) -> None:
    raw = from_bob(from_="Dave <dave@dkim.test>", message_id="<spoof@dkim.test>")
    code, _ = refused(dropbox, raw, "dave@dkim.test", dropbox.address("bob@acme.com"))
    assert code == 550
    found = why(db, dropbox.config, account_id, "spoof@dkim.test")
    [first] = found.findings
    assert first.decision == "refused" and "spf=fail" in first.reason
    assert first.details["mail_from"] == "dave@dkim.test"


@pytest.mark.parametrize("dropbox_options", [{"policy": "quarantine"}])
def test_held_for_approval(dropbox: Dropbox, db: Database, account_id: int) -> None:
    raw = from_bob(from_="Dave <dave@dkim.test>", message_id="<held@dkim.test>")
    send(dropbox, raw, "dave@dkim.test", dropbox.address("bob@acme.com"))
    [first] = why(db, dropbox.config, account_id, "held@dkim.test").findings
    assert first.decision == "quarantined" and "spf=fail" in first.reason
    assert "gateway quarantine approve" in first.reason


def test_never_seen(db: Database, config: Config, account_id: int) -> None:
    found = why(db, config, account_id, "nowhere@x.example")
    assert [f.decision for f in found.findings] == ["never_seen"]
    assert "no mailbox is connected" in found.answer


def test_scanned_but_not_fetched_then_backfill_pending(
    db: Database, imap_config: Config, account_id: int, imap_user: ImapUser
) -> None:
    fill(imap_user, "INBOX", 2, set(), "scan")  # from strangers: scanned, not fetched
    connect_mailbox(db, imap_config, imap_user)
    sync(db, imap_config)
    [first] = why(db, imap_config, account_id, "scan1@x.example").findings
    assert first.decision == "not_a_contact" and "stranger1@nowhere.example" in first.reason
    assert first.where.startswith("imap INBOX of bob@acme.com, UID")
    contacts(db, imap_config, account_id, "stranger1@nowhere.example")
    [later] = why(db, imap_config, account_id, "scan1@x.example").findings
    assert later.decision == "backfill_pending"
    sync(db, imap_config)
    [fetched] = why(db, imap_config, account_id, "scan1@x.example").findings
    assert fetched.decision == "attached"


def test_the_api_and_the_cli_give_the_same_answer_and_members_see_only_theirs(
    dropbox: Dropbox, db: Database, account_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    config = dropbox.config
    ensure_key_file(config.secret_key_file)
    contacts(db, config, account_id, "carol@client.com")
    send(
        dropbox,
        from_bob(message_id="<api@acme.com>"),
        "bob@acme.com",
        dropbox.address("bob@acme.com"),
    )
    Pipeline(db, config).run_pending()
    with db.session() as session:
        reader = create_account_token(session, account_id, ["read"]).token
        bob = create_token(session, config, "bob@acme.com").token
        ann = create_token(session, config, "ann@acme.com").token
    answers = {}
    with running_web(db, config) as url:
        for name, token in (("reader", reader), ("bob", bob), ("ann", ann)):
            answers[name] = httpx.get(
                f"{url}/api/v1/explain",
                params={"message_id": "api@acme.com", "contact": "carol@client.com"},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
    assert answers["reader"]["findings"][0]["decision"] == "attached"
    assert answers["bob"]["answer"] == answers["reader"]["answer"]  # his own mail
    assert answers["ann"]["findings"][0]["decision"] == "never_seen"  # not hers
    config_file = config.base_dir / "why.toml"
    config_file.write_text(f'[database]\nurl = "{config.database_url}"\n')
    assert main(["--config", str(config_file), "messages", "why", "<api@acme.com>", "--json"]) == 0
    printed = capsys.readouterr().out
    assert '"decision": "attached"' in printed and answers["reader"]["answer"] in printed
