"""Connect email over real HTTP: the provider tiles, the sync choice and the plans, a
password connect tried step by step (IMAP connect, IMAP sign-in, SMTP connect, SMTP
sign-in) against the in-process IMAP server and an SMTP sink, and the OAuth2
authorization-code flow with PKCE against a local authorization server, refused
consent and a forged callback included."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from gateway.accounts import set_password
from gateway.config import Config, OAuth2Config
from gateway.db import Database
from gateway.models import Account, Mailbox
from gateway.vault import Vault
from tests.helpers.browser_session import Person
from tests.helpers.web import running_web
from tests.peers.imap_faults import FaultyImap
from tests.peers.oauth_server import AuthServer
from tests.peers.smtp_sink import Sink

PASSWORD = "a long enough password"


@dataclass
class Site:
    url: str
    db: Database
    config: Config
    imap: FaultyImap
    auth: AuthServer
    people: list[Person] = field(default_factory=list)

    def bob(self) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in("bob@acme.com", PASSWORD).status_code == 303
        return found

    def mailboxes(self) -> list[Mailbox]:
        with self.db.read() as session:
            return list(session.scalars(select(Mailbox).order_by(Mailbox.id)))


@pytest.fixture
def site(db: Database, imap_config: Config, account_id: int) -> Iterator[Site]:
    imap = FaultyImap()
    imap.add_user("bob@acme.com", password="imap-pass")
    auth = AuthServer(imap)
    config = replace(
        imap_config,
        oauth2=OAuth2Config(
            google_client_id=auth.client_id,
            google_client_secret=auth.client_secret,
            google_authorize_url=f"{auth.url}/authorize",
            google_token_url=f"{auth.url}/token",
            timeout=5.0,
        ),
    )
    with db.session() as session:
        set_password(session, config, "bob@acme.com", PASSWORD)
    with running_web(db, config) as url:
        found = Site(url, db, config, imap, auth)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()
            auth.stop()
            imap.stop()


def servers(site: Site, smtp: Sink | None = None, smtp_port: int | None = None) -> dict[str, str]:
    """The Server settings fields pointing at the test servers."""
    fields = {
        "imap_host": "127.0.0.1",
        "imap_port": str(site.imap.port),
        "imap_security": "none",
        "smtp_host": "",
        "smtp_port": "",
        "smtp_security": "none",
    }
    if smtp is not None or smtp_port is not None:
        fields["smtp_host"] = "127.0.0.1"
        fields["smtp_port"] = str(smtp_port or (smtp.port if smtp else 0))
    return fields


def steps(text: str) -> list[tuple[str, str]]:
    """(step, what happened) as the page lists them."""
    found = re.findall(r"<strong>([A-Z]+ [a-z-]+)</strong>: (worked|failed|not tried)", text)
    return [(a, b) for a, b in found]


def test_the_tiles_say_what_each_is_and_what_is_not_set_up(site: Site) -> None:
    bob = site.bob()
    page = bob.get("/mailboxes/connect")
    assert page.status_code == 200
    names = re.findall(
        r'<a class="tile" href="/mailboxes/connect/(\w+)">\s*<strong>([^<]+)', page.text
    )
    assert names == [
        ("gmail", "Gmail"),
        ("microsoft365", "Microsoft 365"),
        ("outlook", "Outlook"),
        ("zoho", "Zoho"),
        ("other", "Other"),
    ]
    assert "Which do I choose? Microsoft 365 or Outlook?" in page.text
    assert "personal Microsoft account" in page.text
    assert "Sign in with Google" in page.text  # configured here
    # Microsoft is not configured: the tile and its page say what to set.
    assert "an admin sets [oauth2] microsoft_client_id and microsoft_client_secret" in page.text
    outlook = bob.get("/mailboxes/connect/outlook")
    assert "<code>[oauth2] microsoft_client_id and microsoft_client_secret</code>" in outlook.text
    assert "/oauth" not in outlook.text  # no sign-in button that cannot work
    assert bob.get("/mailboxes/connect/nowhere").status_code == 404
    # The empty Mailboxes page leads here.
    assert 'href="/mailboxes/connect"' in bob.get("/mailboxes").text


def test_one_way_is_shown_disabled_and_refused_off_pro_and_enterprise(site: Site) -> None:
    bob = site.bob()
    page = bob.get("/mailboxes/connect/zoho")
    assert re.search(r'value="one_way"[^>]* disabled', page.text)
    assert "Available on Pro and Enterprise plans." in page.text
    assert 'value="imap.zoho.com"' in page.text and 'value="993"' in page.text
    refused = bob.form(
        "/mailboxes/connect/zoho",
        "/mailboxes/connect/zoho",
        sync="one_way",
        email="bob@acme.com",
        password="imap-pass",
        **servers(site),
    )
    assert refused.status_code == 422
    assert "One-way sync is available on the Pro and Enterprise plans" in refused.text
    oauth = bob.form(
        "/mailboxes/connect/gmail",
        "/mailboxes/connect/gmail/oauth",
        sync="one_way",
        **servers(site),
    )
    assert oauth.status_code == 422 and "Pro and Enterprise" in oauth.text
    assert site.mailboxes() == [] and site.auth.authorize_requests == []
    with site.db.session() as session:
        session.scalars(select(Account)).one().plan = "pro"
    page = bob.get("/mailboxes/connect/zoho")
    assert not re.search(r'value="one_way"[^>]* disabled', page.text)
    done = bob.form(
        "/mailboxes/connect/other",
        "/mailboxes/connect/other",
        sync="one_way",
        email="bob@acme.com",
        password="imap-pass",
        **servers(site),
    )
    assert done.status_code == 303
    assert [m.sync_mode for m in site.mailboxes()] == ["one_way"]


def test_password_connect_tries_each_step_and_saves_only_when_all_worked(site: Site) -> None:
    bob = site.bob()
    smtp = Sink(login=("bob@acme.com", "imap-pass"))
    try:
        wrong = bob.form(
            "/mailboxes/connect/zoho",
            "/mailboxes/connect/zoho",
            email="bob@acme.com",
            password="not it",
            **servers(site, smtp),
        )
        assert wrong.status_code == 422
        assert steps(wrong.text) == [
            ("IMAP connect", "worked"),
            ("IMAP sign-in", "failed"),
            ("SMTP connect", "not tried"),
            ("SMTP sign-in", "not tried"),
        ]
        assert "refused the user name or password for bob@acme.com" in wrong.text
        # Zoho's own words on two-factor sign-in, and its app-password page.
        assert "application-specific password" in wrong.text
        assert (
            'href="https://help.zoho.com/portal/kb/articles/manage-application-specific-passwords"'
            in wrong.text
        )
        assert 'value="bob@acme.com"' in wrong.text  # what was typed stays

        site.imap.set_password("bob@acme.com", "new imap pass")
        smtp_refused = bob.form(
            "/mailboxes/connect/other",
            "/mailboxes/connect/other",
            email="bob@acme.com",
            password="new imap pass",
            **servers(site, smtp),
        )
        assert steps(smtp_refused.text) == [
            ("IMAP connect", "worked"),
            ("IMAP sign-in", "worked"),
            ("SMTP connect", "worked"),
            ("SMTP sign-in", "failed"),
        ]
        assert "the SMTP server refused the user name or password" in smtp_refused.text

        closed = bob.form(
            "/mailboxes/connect/other",
            "/mailboxes/connect/other",
            email="bob@acme.com",
            password="new imap pass",
            **servers(site, smtp_port=_closed_port()),
        )
        assert steps(closed.text)[2] == ("SMTP connect", "failed")
        assert "cannot reach 127.0.0.1" in closed.text
        assert site.mailboxes() == []  # nothing saved after any failure

        site.imap.set_password("bob@acme.com", "imap-pass")
        done = bob.form(
            "/mailboxes/connect/other",
            "/mailboxes/connect/other",
            email="bob@acme.com",
            password="imap-pass",
            **servers(site, smtp),
        )
        assert done.status_code == 303 and done.headers["location"] == "/mailboxes?done=connected"
        assert smtp.authentications >= 1
        (box,) = site.mailboxes()
        assert (box.email, box.auth, box.provider, box.sync_mode) == (
            "bob@acme.com",
            "password",
            "other",
            "two_way",
        )
        assert (box.smtp_host, box.smtp_port) == ("127.0.0.1", smtp.port)
        assert box.sync_requested_at is not None  # the first sync starts at once
        assert "imap-pass" not in (box.credentials or "")
        listed = bob.get("/mailboxes?done=connected")
        assert "Connected: the first sync starts within seconds" in listed.text
        again = bob.form(
            "/mailboxes/connect/other",
            "/mailboxes/connect/other",
            email="bob@acme.com",
            password="imap-pass",
            **servers(site),
        )
        assert again.status_code == 422 and "already connected" in again.text
    finally:
        smtp.close()


def test_look_up_server_settings_for_other(site: Site) -> None:
    bob = site.bob()
    page = bob.get("/mailboxes/connect/other")
    assert '<details class="servers" open>' in page.text  # Other shows them at once
    found = bob.form(
        "/mailboxes/connect/other", "/mailboxes/connect/other", action="lookup", email="x@gmail.com"
    )
    assert found.status_code == 200
    assert 'value="imap.gmail.com"' in found.text and 'value="smtp.gmail.com"' in found.text
    assert "Server settings found from the address" in found.text
    empty = bob.form("/mailboxes/connect/other", "/mailboxes/connect/other", action="lookup")
    assert empty.status_code == 422 and "Enter the email address first" in empty.text


def consent(site: Site, location: str, decision: str) -> str:
    """At the authorization server's page: Allow or Deny; where it sends the browser."""
    page = httpx.get(location)
    assert page.status_code == 200, page.text
    form = {k: html.unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', page.text)}
    answered = httpx.post(f"{site.auth.url}/authorize", data={**form, "decision": decision})
    assert answered.status_code == 303
    return str(answered.headers["location"])


def _oauth(bob: Person, site: Site, decision: str, **fields: str) -> httpx.Response:
    """Sign in with Google: to the provider, its consent page, and back."""
    start = bob.form(
        "/mailboxes/connect/gmail",
        "/mailboxes/connect/gmail/oauth",
        sync="two_way",
        email="bob@acme.com",
        **{**servers(site), **fields},
    )
    assert start.status_code == 303, start.text
    to = start.headers["location"]
    assert to.startswith(f"{site.auth.url}/authorize?")
    back = consent(site, to, decision)
    assert back.startswith(f"{site.url}/mailboxes/connect/callback?")
    return bob.get(back.removeprefix(site.url))


def test_oauth_sign_in_with_pkce_stores_the_tokens_encrypted_and_starts_the_sync(
    site: Site,
) -> None:
    bob = site.bob()
    page = bob.get("/mailboxes/connect/gmail")
    # The form may post to the provider's sign-in page (after a redirect): the CSP says so.
    assert f"form-action 'self' {site.auth.url}" in page.headers["content-security-policy"]
    smtp = Sink(login=("bob@acme.com", "access-1"))
    try:
        came_back = _oauth(bob, site, "allow", **servers(site, smtp))
    finally:
        smtp.close()
    assert came_back.status_code == 303, came_back.text
    assert came_back.headers["location"] == "/mailboxes?done=connected"
    asked = site.auth.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and asked["login_hint"] == "bob@acme.com"
    assert asked["access_type"] == "offline" and asked["prompt"] == "consent"
    # IMAP and SMTP, the calendars (CalDAV), and the address.
    assert asked["scope"] == (
        "https://mail.google.com/ https://www.googleapis.com/auth/calendar.readonly openid email"
    )
    (token_call,) = site.auth.token_requests
    assert len(token_call["code_verifier"]) >= 43  # RFC 7636: the verifier went only here
    assert token_call["code_verifier"] not in json.dumps(asked)
    (box,) = site.mailboxes()
    assert (box.auth, box.provider, box.email) == ("oauth2", "gmail", "bob@acme.com")
    assert box.sync_requested_at is not None
    assert "refresh-1" not in (box.credentials or "")
    stored = json.loads(Vault.load(site.config.secret_key_file).decrypt(box.credentials or ""))
    assert stored["access_token"] == "access-1" and stored["refresh_token"] == "refresh-1"
    assert "gateway_oauth" not in bob.client.cookies  # the pending sign-in is spent
    # The same callback again (a reload, or a replay) connects nothing more.
    replay = bob.get("/mailboxes/connect/callback?code=x&state=" + asked["state"])
    assert replay.status_code == 400 and "did not start in this browser" in replay.text
    assert len(site.mailboxes()) == 1


def test_refused_consent_and_a_forged_callback_connect_nothing(site: Site) -> None:
    bob = site.bob()
    refused = _oauth(bob, site, "deny")
    assert refused.status_code == 200
    assert "You did not allow the gateway to read and send your mail" in refused.text
    assert 'href="/mailboxes/connect/gmail"' in refused.text  # try again
    assert site.auth.token_requests == [] and site.mailboxes() == []
    # A callback this browser did not start (another's state, or none): refused.
    start = bob.form(
        "/mailboxes/connect/gmail", "/mailboxes/connect/gmail/oauth", email="bob@acme.com"
    )
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    forged = bob.get("/mailboxes/connect/callback?code=abc&state=not-" + state)
    assert forged.status_code == 400
    stranger = Person(site.url)
    site.people.append(stranger)
    assert stranger.sign_in("bob@acme.com", PASSWORD).status_code == 303
    other_browser = stranger.get(f"/mailboxes/connect/callback?code=abc&state={state}")
    assert other_browser.status_code == 400
    assert site.auth.token_requests == [] and site.mailboxes() == []


def test_reconnect_an_oauth_mailbox_by_signing_in_again(site: Site) -> None:
    bob = site.bob()
    assert _oauth(bob, site, "allow").status_code == 303
    (box,) = site.mailboxes()
    with site.db.session() as session:
        row = session.get_one(Mailbox, box.id)
        row.state, row.reconnect_reason = "reconnect_required", "oauth_revoked"
    site.imap.tokens["bob@acme.com"] = "revoked"
    edit = bob.get(f"/mailboxes/{box.id}/edit")
    assert "Sign in with Google again" in edit.text
    assert f"form-action 'self' {site.auth.url}" in edit.headers["content-security-policy"]
    start = bob.form(f"/mailboxes/{box.id}/edit", f"/mailboxes/{box.id}/oauth")
    assert start.status_code == 303
    back = consent(site, start.headers["location"], "allow")
    came_back = bob.get(back.removeprefix(site.url))
    assert came_back.headers["location"] == "/mailboxes?done=reconnected"
    (box,) = site.mailboxes()
    assert box.state == "active"
    stored = json.loads(Vault.load(site.config.secret_key_file).decrypt(box.credentials or ""))
    assert stored["access_token"] == "access-2"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_outlook_signs_in_with_microsofts_endpoints_and_scopes(site: Site) -> None:
    microsoft = replace(
        site.config.oauth2,
        microsoft_client_id=site.auth.client_id,
        microsoft_client_secret=site.auth.client_secret,
        microsoft_tenant="consumers",
        microsoft_authorize_url=f"{site.auth.url}/authorize?tenant={{tenant}}",
        microsoft_token_url=f"{site.auth.url}/token?tenant={{tenant}}",
    )
    config = replace(site.config, oauth2=microsoft)
    with running_web(site.db, config) as url:
        bob = Person(url)
        site.people.append(bob)
        assert bob.sign_in("bob@acme.com", PASSWORD).status_code == 303
        assert "Sign in with Microsoft" in bob.get("/mailboxes/connect/outlook").text
        start = bob.form(
            "/mailboxes/connect/outlook",
            "/mailboxes/connect/outlook/oauth",
            email="bob@acme.com",
            **servers(site),
        )
        asked = parse_qs(urlsplit(start.headers["location"]).query)
        assert asked["tenant"] == ["consumers"] and asked["prompt"] == ["select_account"]
        assert "offline_access" in asked["scope"][0].split()
        assert "https://outlook.office.com/IMAP.AccessAsUser.All" in asked["scope"][0].split()
        # Graph's calendar scope is consented to with the rest, asked for apart later.
        assert asked["scope"][0].split()[-1] == "https://graph.microsoft.com/Calendars.Read"
        back = consent(site, start.headers["location"], "allow")
        came_back = bob.get(back.removeprefix(url))
        assert came_back.headers.get("location") == "/mailboxes?done=connected", came_back.text
    (box,) = site.mailboxes()
    assert (box.provider, box.auth) == ("outlook", "oauth2")
