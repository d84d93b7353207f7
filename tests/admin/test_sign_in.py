"""Sign-in for people, over real HTTP: the one-time password changed first, the
session cookie's flags, a new session id at sign-in, CSRF on every form and on the
API with the cookie, sign-out and expiry ending the session on the server, the
pause after failed sign-ins, and the roles (admin, member) on the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.accounts import add_user, create_account, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Account, WebSession, utcnow
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.web import running_web

BOB_PASSWORD = "bob's own long password"


@dataclass
class Site:
    url: str
    db: Database
    one_time: str  # root@acme.com's, from account creation
    other_admin: str  # olga@other.test's password
    people: list[Person] = field(default_factory=list)

    def person(self, **headers: str) -> Person:
        self.people.append(Person(self.url, **headers))
        return self.people[-1]


def _site(db: Database, config: Config, account_id: int, **web: Any) -> Iterator[Site]:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        account = session.get_one(Account, account_id)
        _, one_time = add_user(session, config, account, "root@acme.com", "Root", admin=True)
        set_password(session, config, "bob@acme.com", BOB_PASSWORD)
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga", admin=True)
        set_password(session, config, "olga@other.test", "olga's own long password")
    assert one_time is not None
    with running_web(db, config, **web) as url:
        site = Site(url, db, one_time, "olga's own long password")
        try:
            yield site
        finally:
            for person in site.people:
                person.close()


@pytest.fixture
def site(db: Database, config: Config, account_id: int) -> Iterator[Site]:
    yield from _site(db, config, account_id)


def _signed_in_root(site: Site) -> Person:
    """root@acme.com signed in, with the one-time password changed."""
    root = site.person()
    root.sign_in("root@acme.com", site.one_time)
    changed = root.form(
        "/account/password",
        "/account/password",
        current=site.one_time,
        new="root's own long password",
        again="root's own long password",
    )
    assert changed.status_code == 303
    return root


def test_the_one_time_password_must_be_changed_before_anything_else(site: Site) -> None:
    root = site.person()
    first = root.sign_in("root@acme.com", site.one_time)
    assert first.status_code == 303 and first.headers["location"] == "/account/password"
    assert root.get("/").headers["location"] == "/account/password"
    api = root.api("GET", "/contacts")
    assert api.status_code == 403 and "one-time password" in api.json()["detail"]
    page = root.get("/account/password")
    assert "Choose your password" in page.text and "one-time password" in page.text

    def change(current: str, new: str, again: str) -> str:
        answer = root.form(
            "/account/password", "/account/password", current=current, new=new, again=again
        )
        assert answer.status_code == 422
        return answer.text

    assert "current password is not right" in change(
        "wrong", "a long new password", "a long new password"
    )
    assert "differ" in change(site.one_time, "a long new password", "another long password")
    assert "at least 12 characters" in change(site.one_time, "short", "short")
    assert "must differ" in change(site.one_time, site.one_time, site.one_time)
    before = root.session_cookie
    done = root.form(
        "/account/password",
        "/account/password",
        current=site.one_time,
        new="root's own long password",
        again="root's own long password",
    )
    assert done.status_code == 303 and done.headers["location"] == "/?changed=1"
    assert root.session_cookie != before  # a new session id after the change
    home = root.get("/?changed=1")
    assert "Your password is changed" in home.text and "root@acme.com" in home.text
    assert root.api("GET", "/contacts").status_code == 200
    again = site.person()
    assert again.sign_in("root@acme.com", site.one_time).status_code == 401
    assert again.sign_in("root@acme.com", "root's own long password").status_code == 303


def test_the_session_cookie(site: Site, db: Database, config: Config) -> None:
    bob = site.person()
    signed = bob.sign_in("bob@acme.com", BOB_PASSWORD)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = next(
        c for c in signed.headers.get_list("set-cookie") if c.startswith("gateway_session=")
    )
    flags = [f.strip().lower() for f in cookie.split(";")[1:]]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags and not any(f.startswith("max-age") for f in flags)
    # The cookie holds a signed random id; the database only its SHA-256.
    value = bob.session_cookie or ""
    with db.read() as session:
        stored = session.scalars(select(WebSession.id_sha256)).all()
    assert value and all(value.split(".")[0] not in s for s in stored)
    # Behind a TLS proxy (trusted: loopback), the cookie is Secure.
    proxied = site.person(**{"X-Forwarded-Proto": "https"})
    answer = proxied.sign_in("bob@acme.com", BOB_PASSWORD)
    assert "secure" in answer.headers["set-cookie"].lower()


def test_public_url_https_makes_the_cookie_secure(
    db: Database, config: Config, account_id: int
) -> None:
    for site in _site(db, config, account_id, public_url="https://mail.example.com"):
        bob = site.person()
        page = bob.get("/sign-in")
        assert "secure" in page.headers["set-cookie"].lower()
        # This test speaks plain HTTP, where a browser would not send back a Secure
        # cookie: hand it back as an https browser would.
        pre = page.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        bob.client.cookies.set("gateway_pre", pre)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = bob.client.post(
            "/sign-in",
            data={"email": "bob@acme.com", "password": BOB_PASSWORD, "csrf_token": token[1]},
        )
        assert answer.status_code == 303 and "secure" in answer.headers["set-cookie"].lower()


def test_a_new_session_id_at_sign_in(site: Site) -> None:
    """A session id planted before sign-in (fixation) is not the one signed in."""
    bob = site.person()
    bob.sign_in("bob@acme.com", BOB_PASSWORD)
    planted = bob.session_cookie
    assert planted
    victim = site.person()
    token = victim.token_on("/sign-in")
    victim.client.cookies.set("gateway_session", planted, domain="127.0.0.1")
    fields = {"email": "bob@acme.com", "password": BOB_PASSWORD, "csrf_token": token}
    assert victim.client.post("/sign-in", data=fields).status_code == 303
    assert victim.session_cookie != planted
    attacker = site.person()
    attacker.client.cookies.set("gateway_session", planted)
    assert attacker.get("/").status_code == 303  # the planted session ended at sign-in


def test_csrf_on_every_form_and_on_the_api(site: Site) -> None:
    bob = site.person()
    bob.get("/sign-in")
    forged = bob.client.post(
        "/sign-in", data={"email": "bob@acme.com", "password": BOB_PASSWORD, "csrf_token": "x"}
    )
    assert forged.status_code == 403 and "expired" in forged.text and not bob.session_cookie
    bare = bob.client.post("/sign-in", data={"email": "bob@acme.com", "password": BOB_PASSWORD})
    assert bare.status_code == 403 and not bob.session_cookie
    assert bob.sign_in("bob@acme.com", BOB_PASSWORD).status_code == 303
    out = bob.client.post("/sign-out", data={"csrf_token": "forged"})
    assert out.status_code == 403 and bob.get("/").status_code == 200  # still signed in
    pw = bob.client.post(
        "/account/password",
        data={"current": BOB_PASSWORD, "new": "x" * 20, "again": "x" * 20, "csrf_token": "no"},
    )
    assert pw.status_code == 403
    contact = {"name": "Carol", "emails": ["carol@example.com"]}
    refused = bob.api("POST", "/contacts", csrf=False, json=contact)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    wrong = bob.api("POST", "/contacts", csrf=False, json=contact, headers={"X-CSRF-Token": "no"})
    assert wrong.status_code == 403
    assert bob.api("POST", "/contacts", json=contact).status_code == 201
    # No state change on GET.
    assert bob.get("/sign-out").status_code == 405
    assert bob.get("/").status_code == 200


def test_sign_out_ends_the_session_on_the_server(site: Site) -> None:
    bob = site.person()
    bob.sign_in("bob@acme.com", BOB_PASSWORD)
    kept = bob.session_cookie
    out = bob.form("/", "/sign-out")
    assert out.status_code == 303 and out.headers["location"] == "/sign-in?out=1"
    assert "You are signed out" in bob.get("/sign-in?out=1").text
    replay = site.person()
    replay.client.cookies.set("gateway_session", kept or "")
    assert replay.get("/").headers["location"] == "/sign-in?next=/"
    assert replay.api("GET", "/contacts").status_code == 401


@pytest.mark.parametrize("column", ["last_seen_at", "created_at"])
def test_idle_and_absolute_timeouts(site: Site, config: Config, column: str) -> None:
    bob = site.person()
    bob.sign_in("bob@acme.com", BOB_PASSWORD)
    assert bob.get("/").status_code == 200
    # Idle past [web] session_idle_timeout, or signed in before session_max_age.
    limit = (
        config.web.session_idle_timeout if column == "last_seen_at" else config.web.session_max_age
    )
    with site.db.session() as session:
        session.execute(
            update(WebSession).values({column: utcnow() - timedelta(seconds=limit + 5)})
        )
    assert bob.get("/").headers["location"] == "/sign-in?next=/"
    assert bob.api("GET", "/contacts").status_code == 401


def test_a_page_sends_the_signed_out_to_sign_in_and_back(site: Site) -> None:
    bob = site.person()
    sent = bob.get("/account/password")
    assert sent.status_code == 303 and sent.headers["location"] == "/sign-in?next=/account/password"
    back = bob.sign_in("bob@acme.com", BOB_PASSWORD, next="/account/password")
    assert back.headers["location"] == "/account/password"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        other = site.person()
        assert other.sign_in("bob@acme.com", BOB_PASSWORD, next=evil).headers["location"] == "/"


def test_failed_sign_ins_pause_the_address_then_the_network(
    db: Database, config: Config, account_id: int
) -> None:
    for site in _site(db, config, account_id, sign_in_failures_per_ip=8):
        guesser = site.person(**{"X-Forwarded-For": "198.51.100.7"})
        for _ in range(5):
            wrong = guesser.sign_in("bob@acme.com", "a wrong guess!")
            assert wrong.status_code == 401 and "not right" in wrong.text
            assert "password is not right" in wrong.text and "no such" not in wrong.text
        paused = guesser.sign_in("bob@acme.com", BOB_PASSWORD)  # even the right one
        assert paused.status_code == 429 and not guesser.session_cookie
        assert "Too many failed sign-ins for this address" in paused.text
        assert "Try again in 15 minutes" in paused.text
        assert 800 <= int(paused.headers["retry-after"]) <= 900
        # Another address from this network still signs in, until the network's count.
        for _ in range(3):  # 5 + 3: the network's 8
            assert guesser.sign_in("ann@acme.com", "wrong again!").status_code == 401
        network = guesser.sign_in("root@acme.com", site.one_time)
        assert network.status_code == 429 and "from this network" in network.text
        elsewhere = site.person(**{"X-Forwarded-For": "203.0.113.9"})
        assert elsewhere.sign_in("root@acme.com", site.one_time).status_code == 303
        # An unknown address is counted and answered as a wrong password.
        stranger = site.person(**{"X-Forwarded-For": "203.0.113.10"})
        unknown = stranger.sign_in("nobody@acme.com", "whatever it is")
        assert unknown.status_code == 401 and "password is not right" in unknown.text


def test_roles_on_the_api(site: Site) -> None:
    root = _signed_in_root(site)
    bob = site.person()
    bob.sign_in("bob@acme.com", BOB_PASSWORD)
    everyone = [u["email"] for u in root.api("GET", "/users").json()["data"]]
    assert everyone == ["bob@acme.com", "ann@acme.com", "root@acme.com"]
    assert [u["email"] for u in bob.api("GET", "/users").json()["data"]] == ["bob@acme.com"]
    ann_id = root.api("GET", "/users").json()["data"][1]["id"]
    assert bob.api("GET", f"/users/{ann_id}").status_code == 404
    assert bob.api("POST", f"/users/{ann_id}/rotate-dropbox").status_code == 404
    for method, path, body in (
        ("PATCH", "/settings", {"auto_create_contacts": True}),
        ("GET", "/webhooks", None),
        ("GET", "/events", None),
    ):
        assert bob.api(method, path, json=body).status_code == 403, path
        assert root.api(method, path, json=body).status_code == 200, path
    # Contacts are the account's, shared: a member reads, adds and changes them;
    # deleting and importing are an admin's.
    made = bob.api("POST", "/contacts", json={"name": "Dan", "emails": ["dan@example.com"]})
    assert made.status_code == 201, made.text
    dan = f"/contacts/{made.json()['id']}"
    assert bob.api("PATCH", dan, json={"name": "Daniel"}).json()["name"] == "Daniel"
    assert bob.api("GET", "/contacts").json()["data"][0]["name"] == "Daniel"
    assert bob.api("DELETE", dan).status_code == 403
    rows = {"contacts": [{"name": "Eve", "emails": ["eve@example.com"]}]}
    assert bob.api("POST", "/contacts/import", json=rows).status_code == 403
    # Another account's admin finds none of it.
    olga = site.person()
    olga.sign_in("olga@other.test", site.other_admin)
    assert olga.api("GET", f"/contacts/{made.json()['id']}").status_code == 404
    assert olga.api("GET", f"/users/{ann_id}").status_code == 404
    assert [u["email"] for u in olga.api("GET", "/users").json()["data"]] == ["olga@other.test"]


def test_setting_a_password_from_the_cli_signs_the_user_out(site: Site, config: Config) -> None:
    from gateway.web_sessions import end_sessions_of

    bob = site.person()
    bob.sign_in("bob@acme.com", BOB_PASSWORD)
    with site.db.session() as session:
        user = set_password(session, config, "bob@acme.com", "a brand new password")
        assert end_sessions_of(session, user.id) == 1
    assert bob.get("/").status_code == 303
