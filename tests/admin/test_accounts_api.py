"""/api/v1/users and /api/v1/settings over real HTTP: dropbox addresses and their
rotation, sending routes, the account's settings; scopes, a user's own token seeing
only themselves, and another account's users never found."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.accounts import add_user, create_account
from gateway.config import Config
from gateway.db import Database
from gateway.tokens import create_account_token, create_token
from gateway.vault import ensure_key_file
from tests.helpers.web import ApiClient, running_web

Api = ApiClient


@pytest.fixture
def api(db: Database, config: Config, account_id: int) -> Iterator[Api]:
    ensure_key_file(config.secret_key_file)
    config = replace(
        config, outbound=replace(config.outbound, relay_url="smtp://relay.example:587")
    )
    with db.session() as session:
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "admin": create_account_token(session, account_id, ["read", "write", "admin"]).token,
            "read": create_account_token(session, account_id, ["read"]).token,
            "bob": create_token(session, config, "bob@acme.com").token,
            "other": create_account_token(session, other.id, ["read", "write", "admin"]).token,
        }
    with running_web(db, config) as url:
        yield Api(url, tokens)


def test_users_their_dropbox_addresses_and_routes(api: Api) -> None:
    listed = api.call("GET", "/users", "read").json()
    emails = [u["email"] for u in listed["data"]]
    assert emails == ["bob@acme.com", "ann@acme.com"] and listed["next_cursor"] is None
    bob = listed["data"][0]
    assert bob["addresses"] == ["bob@acme.com", "bob@acme.org"] and bob["route"] is None
    page = api.call("GET", "/users", "read", params={"limit": 1}).json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    rotated = api.call("POST", f"/users/{bob['id']}/rotate-dropbox", "admin").json()
    assert rotated["dropbox_address"] != bob["dropbox_address"]
    assert api.call("POST", f"/users/{bob['id']}/rotate-dropbox", "read").status_code == 403
    routed = api.call("PUT", f"/users/{bob['id']}/route", "admin", json={"route": "relay"})
    assert routed.status_code == 200 and routed.json()["route"] == "relay"
    no_mailbox = api.call("PUT", f"/users/{bob['id']}/route", "admin", json={"route": "mailbox"})
    assert no_mailbox.status_code == 422 and "no connected mailbox" in no_mailbox.json()["detail"]
    bad = api.call("PUT", f"/users/{bob['id']}/route", "admin", json={"route": "pigeon"})
    assert bad.status_code == 422


def test_a_users_own_token_sees_only_them(api: Api) -> None:
    mine = api.call("GET", "/users", "bob").json()["data"]
    assert [u["email"] for u in mine] == ["bob@acme.com"]
    ann = api.call("GET", "/users", "read").json()["data"][1]
    assert api.call("GET", f"/users/{ann['id']}", "bob").status_code == 404
    assert api.call("GET", f"/users/{mine[0]['id']}", "bob").json()["email"] == "bob@acme.com"


def test_settings(api: Api) -> None:
    shown = api.call("GET", "/settings", "read").json()
    assert shown == {"plan": "free", "auto_create_contacts": False, "blocked_domains": []}
    changed = api.call(
        "PATCH",
        "/settings",
        "admin",
        json={"auto_create_contacts": True, "blocked_domains": ["Spam.COM.", "spam.com"]},
    )
    assert changed.json()["auto_create_contacts"] is True
    assert changed.json()["blocked_domains"] == ["spam.com"]
    refused = api.call("PATCH", "/settings", "admin", json={"blocked_domains": ["a@b.c"]})
    assert refused.status_code == 422
    assert api.call("PATCH", "/settings", "read", json={}).status_code == 403


def test_another_accounts_users_are_never_found(api: Api) -> None:
    bob = api.call("GET", "/users", "read").json()["data"][0]
    for method, path, body in (
        ("GET", f"/users/{bob['id']}", None),
        ("POST", f"/users/{bob['id']}/rotate-dropbox", None),
        ("PUT", f"/users/{bob['id']}/route", {"route": "direct"}),
    ):
        answer = api.call(method, path, "other", json=body)
        assert answer.status_code == 404, (method, path)
    assert [u["email"] for u in api.call("GET", "/users", "other").json()["data"]] == [
        "olga@other.test"
    ]
    assert api.call("GET", "/settings", "other").json()["auto_create_contacts"] is False
