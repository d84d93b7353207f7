"""An admin's Webhooks page over real HTTP: add an endpoint (its secret shown once,
and the calls verify with it), send a test event and see it in the delivery log,
retry a failed delivery, rotate the secret, remove; a refused URL is explained; a
member gets 403 and another account's endpoint is never found."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from standardwebhooks import Webhook

from admin.webhook_delivery import Dispatcher
from gateway.accounts import create_account, get_user, set_password
from gateway.config import Config, SecurityConfig, WebhooksConfig
from gateway.db import Database
from gateway.vault import Vault, ensure_key_file
from gateway.webhooks import add_endpoint
from tests.helpers.browser_session import Person
from tests.helpers.web import running_web
from tests.peers.webhook_receiver import Receiver

PASSWORD = "a long enough password"


@dataclass
class Site:
    url: str
    db: Database
    config: Config
    other_endpoint: int
    people: list[Person] = field(default_factory=list)

    def person(self, email: str) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in(email, PASSWORD).status_code == 303
        return found

    def deliver(self) -> list[str]:
        dispatcher = Dispatcher(self.db, self.config)
        try:
            dispatcher.fan_out()
            return [dispatcher.attempt(job) for job in dispatcher.claim(50)]
        finally:
            dispatcher.close()


@pytest.fixture
def site(db: Database, config: Config, account_id: int) -> Iterator[Site]:
    ensure_key_file(config.secret_key_file)
    config = replace(
        config,
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        webhooks=WebhooksConfig(retry_delays=(0.05, 0.05), timeout=2.0),
    )
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        get_user(session, config, "ann@acme.com").is_admin = True
        other = create_account(session, "other")
        vault = Vault.load(config.secret_key_file)
        theirs, _ = add_endpoint(session, config, vault, other.id, "http://127.0.0.1:9/x")
    with running_web(db, config) as url:
        found = Site(url, db, config, theirs.id)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(1)


def _shown(text: str) -> str:
    found = re.search(r'<code id="shown">([^<]+)</code>', text)
    assert found, "nothing shown"
    return found.group(1)


def test_endpoints_test_events_log_retry_rotate_remove(site: Site, receiver: Receiver) -> None:
    bob = site.person("bob@acme.com")
    assert bob.get("/webhooks").status_code == 403
    ann = site.person("ann@acme.com")
    assert "No endpoint yet" in ann.get("/webhooks").text
    refused = ann.form("/webhooks", "/webhooks", url="ftp://crm.example/x")
    assert refused.status_code == 422 and "http:// or https://" in refused.text
    added = ann.form("/webhooks", "/webhooks", url=receiver.url)
    secret = _shown(added.text)
    assert secret.startswith("whsec_") and secret not in ann.get("/webhooks").text
    endpoint_id = int(_first(r'href="/webhooks/(\d+)"', added.text))
    tested = ann.form("/webhooks", f"/webhooks/{endpoint_id}/test")
    assert tested.headers["location"] == f"/webhooks/{endpoint_id}?done=tested"
    assert site.deliver() == ["delivered"]
    [call] = receiver.requests
    assert Webhook(secret).verify(call.body, call.headers)["type"] == "webhook.test"
    log = ann.get(f"/webhooks/{endpoint_id}").text
    assert "webhook.test" in log and "delivered" in log and "Retry now" not in log
    receiver.statuses = [500] * 10
    ann.form("/webhooks", f"/webhooks/{endpoint_id}/test")
    assert site.deliver() == ["pending"]
    failing = ann.get(f"/webhooks/{endpoint_id}").text
    assert "Retry now" in failing and "500" in failing
    delivery = int(_first(r"/deliveries/(\d+)/retry", failing))
    retried = ann.form(
        f"/webhooks/{endpoint_id}", f"/webhooks/{endpoint_id}/deliveries/{delivery}/retry"
    )
    assert retried.headers["location"] == f"/webhooks/{endpoint_id}?done=retried"
    rotated = ann.form("/webhooks", f"/webhooks/{endpoint_id}/rotate")
    assert _shown(rotated.text) != secret and "keeps signing for 24 hours" in rotated.text
    assert ann.get(f"/webhooks/{site.other_endpoint}").status_code == 404
    assert ann.form("/webhooks", f"/webhooks/{site.other_endpoint}/remove").status_code == 404
    removed = ann.form("/webhooks", f"/webhooks/{endpoint_id}/remove")
    assert removed.headers["location"] == "/webhooks?done=removed"
    assert "No endpoint yet" in ann.get("/webhooks").text
