"""An admin's pages over real HTTP: Users (add, make admin, reset a password: shown
once, and it signs in) and API tokens (created and shown once, working on the API,
last use shown, revoked and refused); a member gets 403; another account's things
are never found."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.accounts import add_user, create_account, get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.web import running_web

PASSWORD = "a long enough password"


@dataclass
class Site:
    url: str
    db: Database
    config: Config
    other_token_id: str
    people: list[Person] = field(default_factory=list)

    def person(self, email: str, password: str = PASSWORD) -> Person:
        found = Person(self.url)
        self.people.append(found)
        answer = found.sign_in(email, password)
        assert answer.status_code == 303, answer.text
        return found


@pytest.fixture
def site(db: Database, config: Config, account_id: int) -> Iterator[Site]:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        get_user(session, config, "ann@acme.com").is_admin = True
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test")
        other_token = create_account_token(session, other.id, ["read"]).public_id
    with running_web(db, config) as url:
        found = Site(url, db, config, other_token)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def _shown(text: str) -> str:
    found = re.search(r'<code id="shown">([^<]+)</code>', text)
    assert found, "nothing shown"
    return found.group(1)


def test_a_member_gets_403(site: Site) -> None:
    bob = site.person("bob@acme.com")
    for path in ("/users", "/tokens"):
        answer = bob.get(path)
        assert answer.status_code == 403 and "Admins only" in answer.text
    assert bob.form("/settings", "/tokens", label="x", scope="read").status_code == 403
    assert 'href="/users"' not in bob.get("/settings").text  # not in a member's navigation


def test_users_add_reset_and_roles(site: Site) -> None:
    ann = site.person("ann@acme.com")
    added = ann.form("/users", "/users", email="Cat@Acme.com", name="Cat")
    assert added.status_code == 200 and "cat@acme.com" in added.text
    one_time = _shown(added.text)
    assert one_time not in ann.get("/users").text  # shown once
    cat = Person(site.url)
    site.people.append(cat)
    first = cat.sign_in("cat@acme.com", one_time)
    assert first.headers["location"] == "/account/password"
    again = ann.form("/users", "/users", email="cat@acme.com")
    assert again.status_code == 422 and "already exists" in again.text, again.headers
    with site.db.read() as session:
        cat_id = get_user(session, site.config, "cat@acme.com").id
    reset = ann.form("/users", f"/users/{cat_id}/password")
    new_one = _shown(reset.text)
    assert new_one != one_time
    assert cat.get("/account/password").status_code == 303  # signed out by the reset
    stranger = Person(site.url)
    site.people.append(stranger)
    assert stranger.sign_in("cat@acme.com", one_time).status_code == 401
    made = ann.form("/users", f"/users/{cat_id}/admin", admin="on")
    assert made.headers["location"] == "/users?done=admin"
    with site.db.read() as session:
        assert get_user(session, site.config, "cat@acme.com").is_admin
    with site.db.read() as session:
        ann_id = get_user(session, site.config, "ann@acme.com").id
    own = ann.form("/users", f"/users/{ann_id}/admin")
    assert own.status_code == 422 and "your own role" in own.text
    with site.db.read() as session:
        olga = get_user(session, site.config, "olga@other.test").id
    assert ann.form("/users", f"/users/{olga}/password").status_code == 404
    assert ann.form("/users", f"/users/{olga}/admin", admin="on").status_code == 404


def test_api_tokens(site: Site) -> None:
    ann = site.person("ann@acme.com")
    assert "No token yet" in ann.get("/tokens").text
    none = ann.client.post("/tokens", data={"csrf_token": ann.token_on("/tokens"), "label": "x"})
    assert none.status_code == 422 and "at least one scope" in none.text
    made = ann.client.post(
        "/tokens",
        data={
            "csrf_token": ann.token_on("/tokens"),
            "label": "our CRM",
            "scope": ["read", "write"],
        },
    )
    token = _shown(made.text)
    assert token.startswith("gwt_") and token not in ann.get("/tokens").text
    api = httpx.get(f"{site.url}/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    listed = ann.get("/tokens").text
    assert "our CRM" in listed and "read, write" in listed and "never" not in listed
    public_id = token.split("_")[1]
    revoked = ann.form("/tokens", f"/tokens/{public_id}/revoke")
    assert revoked.headers["location"] == "/tokens?done=revoked"
    api = httpx.get(f"{site.url}/api/v1/contacts", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert ann.form("/tokens", f"/tokens/{site.other_token_id}/revoke").status_code == 404
    forged = ann.client.post(f"/tokens/{site.other_token_id}/revoke", data={"csrf_token": "x"})
    assert forged.headers["location"] == "/tokens?done=stale"
