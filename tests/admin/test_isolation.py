"""No way to read or change another account's data, nor, for a member, another
user's: every operation of the OpenAPI document that names a thing by id is called
with ids of things that are not the caller's, and every list is read, route by
route. A route added later is covered by construction: an id parameter this test
does not know fails it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from admin.webhook_delivery import Dispatcher
from gateway.accounts import add_user, create_account, get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Account, Mailbox, WebhookDelivery
from gateway.tokens import create_account_token
from gateway.vault import Vault
from gateway.webhooks import add_endpoint
from outbound.sending_domains import add_domain
from tests.helpers.browser_session import Person
from tests.helpers.mail import make_message
from tests.helpers.pipeline import contact, push
from tests.helpers.web import ApiClient, running_web
from tests.peers import tnef

# A body each changing operation accepts, so that only who asks decides the answer.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/api/v1/contacts/{contact_id}"): {"name": "Taken"},
    ("patch", "/api/v1/webhooks/{endpoint_id}"): {"event_types": ["message.sent"]},
    ("put", "/api/v1/users/{user_id}/route"): {"route": "relay"},
    ("post", "/api/v1/mailboxes/{mailbox_id}/reconnect"): {"password": "guess"},
}


@dataclass
class Acme:
    """Ids of acme's things: `ids[param]`, or by path where a name means two things."""

    api: ApiClient
    ids: dict[str, int | str]
    queue_id: int
    webhook_delivery_id: int
    people: list[Person] = field(default_factory=list)

    def id_for(self, path: str, param: str) -> int | str:
        if param == "delivery_id":
            return self.webhook_delivery_id if "/webhooks/" in path else self.queue_id
        if param == "number":
            return 1
        if param not in self.ids:
            pytest.fail(f"{path}: an id parameter {param!r} this test does not know: add it")
        return self.ids[param]


@pytest.fixture
def acme(db: Database, config: Config, account_id: int) -> Iterator[Acme]:
    from dataclasses import replace

    from gateway.config import SecurityConfig
    from gateway.vault import ensure_key_file

    ensure_key_file(config.secret_key_file)
    config = replace(config, security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)))
    carol = contact(db, config, account_id, "carol@client.com", name="Carol")
    anns = push(
        db,
        config,
        make_message(from_="carol@client.com", to="ann@acme.com", subject="Ann's only"),
        user="ann@acme.com",
    )
    anns_meeting = push(  # a meeting in Ann's mail that does not invite bob
        db,
        config,
        tnef.outlook_tnef_only(tnef.meeting_tnef(attendees=[("Ann", "ann@acme.com", 1)])),
        user="ann@acme.com",
    ).meeting_ids[0]
    vault = Vault.load(config.secret_key_file)
    with db.session() as session:
        set_password(session, config, "bob@acme.com", "bob's own long password")
        ann = get_user(session, config, "ann@acme.com")
        box = Mailbox(
            account_id=account_id,
            user_id=ann.id,
            email="ann@acme.com",
            provider="other",
            imap_host="imap.acme.test",
            imap_port=993,
            imap_security="tls",
            username="ann@acme.com",
        )
        session.add(box)
        endpoint, _ = add_endpoint(session, config, vault, account_id, "http://127.0.0.1:9/hook")
        session.flush()
        domain = add_domain(session, vault, session.get_one(Account, account_id), "acme.example")
        ids: dict[str, int | str] = {
            "domain": domain.domain,
            "contact_id": carol,
            "message_id": anns.message_id or 0,
            "mailbox_id": box.id,
            "user_id": ann.id,
            "endpoint_id": endpoint.id,
            "meeting_id": anns_meeting,
        }
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "acme": create_account_token(session, account_id, ["read", "write", "send"]).token,
            "other": create_account_token(
                session, other.id, ["read", "write", "send", "admin"]
            ).token,
        }
    with running_web(db, config) as url:
        api = ApiClient(url, tokens)
        queued = api.call(
            "POST",
            "/messages",
            "acme",
            json={"from": "ann@acme.com", "to": ["carol@client.com"], "subject": "x", "text": "y"},
        )
        assert queued.status_code == 202, queued.text
        message = api.call("GET", f"/messages/{ids['message_id']}", "acme").json()
        ids["conversation_id"] = message["conversation_id"]
        Dispatcher(db, config).fan_out()
        with db.read() as session:
            hook_delivery = session.scalars(select(WebhookDelivery.id)).first()
        assert hook_delivery is not None
        found = Acme(api, ids, queued.json()["id"], hook_delivery)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def _operations(api: ApiClient) -> list[tuple[str, str]]:
    document = httpx.get(f"{api.url}/api/v1/openapi.json", timeout=30).json()
    return [(method, path) for path, ops in document["paths"].items() for method in ops]


def _call(call: Any, acme: Acme, method: str, path: str) -> tuple[str, httpx.Response]:
    concrete = re.sub(r"\{(\w+)\}", lambda m: str(acme.id_for(path, m.group(1))), path)
    body = BODIES.get((method, path))
    return concrete, call(method.upper(), concrete.removeprefix("/api/v1"), json=body)


def test_another_account_reaches_nothing_route_by_route(acme: Acme) -> None:
    def other(method: str, path: str, **kw: Any) -> httpx.Response:
        return acme.api.call(method, path, "other", **kw)

    by_id = [(m, p) for m, p in _operations(acme.api) if "{" in p]
    assert len(by_id) >= 20
    for method, path in by_id:
        concrete, answer = _call(other, acme, method, path)
        assert answer.status_code == 404, (method, concrete, answer.status_code, answer.text)
    # Nothing of acme's was changed by those calls.
    carol = acme.api.call("GET", f"/contacts/{acme.ids['contact_id']}", "acme").json()
    assert carol["name"] == "Carol"
    # Lists and feeds show none of it.
    lists = [p for m, p in _operations(acme.api) if m == "get" and "{" not in p]
    for path in lists:
        answer = other("GET", path.removeprefix("/api/v1"))
        if path in ("/api/v1/explain",):
            continue  # needs a message_id: below
        assert answer.status_code == 200, (path, answer.text)
        body = answer.json()
        if path == "/api/v1/users":
            assert [u["email"] for u in body["data"]] == ["olga@other.test"]
        elif path == "/api/v1/settings":
            assert body["blocked_domains"] == []
        else:
            assert body["data"] == [], (path, body)
    explained = other("GET", "/explain", params={"message_id": "<nothing@x>"})
    assert "Ann's only" not in explained.text


def test_a_member_reaches_only_their_own(acme: Acme) -> None:
    bob = Person(acme.api.url)
    acme.people.append(bob)
    assert bob.sign_in("bob@acme.com", "bob's own long password").status_code == 303

    def member(method: str, path: str, **kw: Any) -> httpx.Response:
        return bob.api(method, path, **kw)

    admin_only = ("/webhooks", "/events", "/users/{user_id}/route", "/settings", "/domains")
    shared = ("/contacts/{contact_id}",)  # the account's contacts: members read them
    for method, path in _operations(acme.api):
        if "{" not in path:
            continue
        concrete, answer = _call(member, acme, method, path)
        short = path.removeprefix("/api/v1")
        if short.startswith(shared):
            allowed = {200, 403} if method != "get" else {200}
            assert answer.status_code in allowed, (method, concrete, answer.text)
        elif short.startswith(admin_only):
            assert answer.status_code == 403, (method, concrete, answer.text)
        else:
            assert answer.status_code == 404, (method, concrete, answer.status_code, answer.text)
    assert bob.api("GET", "/messages").json()["data"] == []
    assert bob.api("GET", "/mailboxes").json()["data"] == []
    assert bob.api("GET", "/conversations").json()["data"] == []
    assert bob.api("GET", "/meetings").json()["data"] == []
    assert bob.api("GET", "/events").status_code == 403
