"""/api/v1/webhooks and /api/v1/events over real HTTP: endpoints made, changed, tested,
rotated and removed with scope admin only, their delivery log paged, a delivery
retried, the catch-up feed; another account's endpoints are never found."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from standardwebhooks.webhooks import Webhook

from admin.webhook_delivery import Dispatcher
from gateway.accounts import add_user, create_account
from gateway.config import Config, SecurityConfig
from gateway.db import Database
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from tests.helpers.web import ApiClient, running_web
from tests.peers.webhook_receiver import Receiver


@dataclass
class Api(ApiClient):
    config: Config


@pytest.fixture
def api(db: Database, config: Config, account_id: int) -> Iterator[Api]:
    ensure_key_file(config.secret_key_file)
    config = replace(config, security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)))
    with db.session() as session:
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "admin": create_account_token(session, account_id, ["admin", "read", "write"]).token,
            "rw": create_account_token(session, account_id, ["read", "write"]).token,
            "other": create_account_token(session, other.id, ["admin", "read"]).token,
        }
    with running_web(db, config) as url:
        yield Api(url, tokens, config)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(statuses=[500, 204])
    yield made
    made.close()


def test_an_endpoint_over_the_api(db: Database, api: Api, receiver: Receiver) -> None:
    made = api.call("POST", "/webhooks", "admin", json={"url": receiver.url})
    assert made.status_code == 201, made.text
    endpoint = made.json()
    secret = endpoint.pop("secret")
    assert secret.startswith("whsec_") and endpoint["enabled"] and endpoint["event_types"] == []
    path = f"/webhooks/{endpoint['id']}"
    assert api.call("GET", path, "admin").json() == endpoint  # the secret never again
    assert api.call("GET", "/webhooks", "admin").json()["data"] == [endpoint]
    changed = api.call("PATCH", path, "admin", json={"event_types": ["webhook.test"]})
    assert changed.json()["event_types"] == ["webhook.test"]
    bad = api.call("PATCH", path, "admin", json={"event_types": ["no.such"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "event_types"
    assert api.call("POST", f"{path}/test", "admin").status_code == 202
    dispatcher = Dispatcher(db, api.config)
    dispatcher.fan_out()
    assert [dispatcher.attempt(j) for j in dispatcher.claim(5)] == ["pending"]  # the 500
    [logged] = api.call("GET", f"{path}/deliveries", "admin").json()["data"]
    assert logged["type"] == "webhook.test" and logged["last_status"] == 500
    retried = api.call("POST", f"/webhooks/deliveries/{logged['id']}/retry", "admin")
    assert retried.status_code == 202
    assert [dispatcher.attempt(j) for j in dispatcher.claim(5)] == ["delivered"]
    last = receiver.requests[-1]
    assert Webhook(secret).verify(last.body, last.headers)["type"] == "webhook.test"
    rotated = api.call("POST", f"{path}/rotate-secret", "admin").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    assert api.call("DELETE", path, "admin").status_code == 204
    assert api.call("GET", path, "admin").status_code == 404


def test_a_private_url_is_refused(api: Api) -> None:
    refused = api.call("POST", "/webhooks", "admin", json={"url": "http://169.254.169.254/"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "url"


def test_endpoints_need_scope_admin_and_stay_in_their_account(api: Api, receiver: Receiver) -> None:
    assert api.call("GET", "/webhooks", "rw").status_code == 403
    made = api.call("POST", "/webhooks", "admin", json={"url": receiver.url}).json()
    path = f"/webhooks/{made['id']}"
    for method, suffix in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/test"),
        ("POST", "/rotate-secret"),
        ("GET", "/deliveries"),
    ):
        kwargs = {"json": {"enabled": False}} if method == "PATCH" else {}
        answer = api.call(method, path + suffix, "other", **kwargs)
        assert answer.status_code == 404, (method, suffix, answer.text)
    assert api.call("GET", "/webhooks", "other").json()["data"] == []
    assert api.call("GET", path, "admin").json()["enabled"]  # untouched


def test_the_delivery_log_pages_newest_first(db: Database, api: Api, receiver: Receiver) -> None:
    made = api.call("POST", "/webhooks", "admin", json={"url": receiver.url}).json()
    path = f"/webhooks/{made['id']}"
    for _ in range(5):
        api.call("POST", f"{path}/test", "admin")
    Dispatcher(db, api.config).fan_out()
    first = api.call("GET", f"{path}/deliveries", "admin", params={"limit": 2}).json()
    ids = [d["id"] for d in first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        more = api.call(
            "GET", f"{path}/deliveries", "admin", params={"limit": 2, "cursor": cursor}
        ).json()
        ids += [d["id"] for d in more["data"]]
        cursor = more["next_cursor"]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)


def test_the_events_feed_catches_up_after_an_id(api: Api) -> None:
    for n in range(3):
        api.call("POST", "/contacts", "rw", json={"emails": [f"c{n}@client.com"]})
    feed = api.call("GET", "/events", "rw", params={"limit": 2}).json()
    assert [e["type"] for e in feed["data"]] == ["contact.created", "contact.created"]
    rest = api.call("GET", "/events", "rw", params={"after": feed["next_after"]}).json()
    assert len(rest["data"]) == 1 and rest["data"][0]["data"]["emails"] == ["c2@client.com"]
    none = api.call("GET", "/events", "rw", params={"after": rest["next_after"]}).json()
    assert none == {"data": [], "next_after": rest["next_after"]}
    assert api.call("GET", "/events", "other").json()["data"] == []
