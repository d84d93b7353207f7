"""The web role: /metrics and /healthz over real HTTP on loopback, errors as problems."""

from __future__ import annotations

import httpx
import pytest

from gateway.accounts import get_user
from gateway.config import Config
from gateway.db import Database
from gateway.models import Keep, Mailbox, MailboxFolder, Source, utcnow
from gateway.store import Arrival, MessageStore
from tests.helpers.mail import make_message
from tests.helpers.web import running_web, sample


def test_metrics_on_an_empty_gateway(db: Database, config: Config, account_id: int) -> None:
    with running_web(db, config) as url:
        answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert sample(answer.text, "gateway_mailboxes", state="active") == 0
    assert sample(answer.text, "gateway_mailboxes", state="reconnect_required") == 0
    assert sample(answer.text, "gateway_messages_waiting", state="pending") == 0


def test_metrics_count_messages_waiting_for_the_pipeline(
    db: Database, config: Config, account_id: int
) -> None:
    with db.session() as session:
        bob_id = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    for n in range(3):
        store.accept(
            make_message(subject=f"s{n}"),
            Arrival(bob_id, Source.DROPBOX, Keep.ALWAYS, source_key=f"k{n}"),
        )
    with running_web(db, config) as url:
        text = httpx.get(f"{url}/metrics").text
    assert sample(text, "gateway_messages_waiting", state="pending") == 3


def test_a_metrics_token_is_required_when_configured(
    db: Database, config: Config, account_id: int
) -> None:
    with running_web(db, config, metrics_token="s3cret-token") as url:
        bare = httpx.get(f"{url}/metrics")
        wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer nope"})
        basic = httpx.get(f"{url}/metrics", headers={"Authorization": "Basic s3cret-token"})
        right = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret-token"})
    for refused in (bare, wrong, basic):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "metrics_token" in refused.json()["detail"]
        assert "gateway_mailboxes" not in refused.text
    assert right.status_code == 200 and "gateway_mailboxes" in right.text


def test_errors_are_problems_and_health_is_checked(
    db: Database, config: Config, account_id: int
) -> None:
    with running_web(db, config) as url:
        missing = httpx.get(f"{url}/no-such-page")
        wrong_method = httpx.post(f"{url}/metrics")
        health = httpx.get(f"{url}/healthz")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404 and missing.json()["title"] == "Not Found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method Not Allowed"
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert "server" not in health.headers  # no software banner


def test_metrics_per_mailbox_folder(db: Database, config: Config, account_id: int) -> None:
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com")
        mailbox = Mailbox(
            account_id=account_id,
            user_id=bob.id,
            email="bob@acme.com",
            provider="other",
            imap_host="imap.acme.com",
            imap_port=993,
            imap_security="tls",
            username="bob",
            state="reconnect_required",
            last_sync_at=utcnow(),
        )
        session.add(mailbox)
        session.flush()
        session.add(
            MailboxFolder(
                mailbox_id=mailbox.id,
                role="inbox",
                name="INBOX",
                total=120,
                scanned=80,
                matched=9,
                fetched=8,
                missing=1,
                audited_at=utcnow(),
            )
        )
    with running_web(db, config) as url:
        text = httpx.get(f"{url}/metrics").text
    who = {"mailbox": "bob@acme.com", "folder": "inbox"}
    assert sample(text, "gateway_mailboxes", state="reconnect_required") == 1
    assert (
        sample(text, "gateway_mailbox_state", mailbox="bob@acme.com", state="reconnect_required")
        == 1
    )
    assert sample(text, "gateway_mailbox_missing_messages", **who) == 1
    assert sample(text, "gateway_mailbox_window_messages", **who) == 120
    assert sample(text, "gateway_mailbox_scanned_messages", **who) == 80
    assert sample(text, "gateway_mailbox_matched_messages", **who) == 9
    assert sample(text, "gateway_mailbox_fetched_messages", **who) == 8
    assert sample(text, "gateway_mailbox_initial_sync_done", **who) == 0
    assert (sample(text, "gateway_mailbox_audit_timestamp_seconds", **who) or 0) > 1.7e9
    assert (
        sample(text, "gateway_mailbox_last_sync_timestamp_seconds", mailbox="bob@acme.com") or 0
    ) > 1.7e9


def test_an_unexpected_error_is_a_500_problem_and_is_logged(
    db: Database, config: Config, account_id: int, monkeypatch, caplog
) -> None:
    from admin import api
    from gateway.tokens import create_token

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, with a secret detail")

    with db.session() as session:
        token = create_token(session, config, "bob@acme.com").token
    monkeypatch.setattr(api, "queue_rows", broken)
    with running_web(db, config) as url:
        answer = httpx.get(
            f"{url}/api/v1/deliveries/1", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 500 and problem["title"] == "Internal Server Error"
    assert "secret" not in answer.text  # the detail stays in the log
    assert any("a bug, with a secret detail" in str(r.exc_info) for r in caplog.records)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("NotSignedIn", 401),
        ("Forbidden", 403),
        ("NotFound", 404),
        ("Conflict", 409),
        ("UnsupportedMedia", 415),
        ("InputError", 422),
        ("Unavailable", 503),
        ("ConfigError", 500),
    ],
)
def test_each_error_class_has_its_status(error: str, status: int) -> None:
    from admin.problems import problem_for
    from gateway import errors

    kind = getattr(errors, error)
    if error == "InputError":
        raised = kind("to", "no recipient")
    elif error == "ConfigError":
        raised = kind("web.listen", "config.toml", "bad")
    else:
        raised = kind("why")
    from admin.problems import TYPES

    answered = problem_for(raised)
    assert answered.status == status and answered.kind in TYPES


def test_interactive_docs_are_served_from_the_app_with_no_cdn(
    db: Database, config: Config, account_id: int
) -> None:
    with running_web(db, config) as url:
        page = httpx.get(f"{url}/api/v1/docs")
        script = httpx.get(f"{url}/api/v1/docs-static/swagger-ui-bundle.js")
        schema = httpx.get(f"{url}/api/v1/openapi.json")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/api/v1/docs-static/swagger-ui-bundle.js" in page.text
    assert "/api/v1/openapi.json" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text.split("<body")[0]
    assert script.status_code == 200 and len(script.content) > 100_000
    assert "/api/v1/contacts" in schema.json()["paths"]


def test_every_problem_has_a_stable_type_described_by_the_app(
    db: Database, config: Config, account_id: int
) -> None:
    from admin.problems import TYPES

    with running_web(db, config) as url:
        missing = httpx.get(f"{url}/no-such-page").json()
        unsigned = httpx.get(f"{url}/api/v1/contacts").json()
        described = httpx.get(f"{url}/api/v1/problems").json()
    assert missing["type"] == "/api/v1/problems#not-found"
    assert unsigned["type"] == "/api/v1/problems#not-signed-in"
    assert described == TYPES


def test_a_value_the_database_cannot_store_is_a_422_not_a_500() -> None:
    from sqlalchemy.exc import DataError

    from admin.problems import problem_for

    refused = problem_for(DataError("INSERT", {}, Exception("cannot contain NUL (0x00) bytes")))
    assert (refused.status, refused.kind) == (422, "invalid-value")
