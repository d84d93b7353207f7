"""The pages end to end: Chromium (Playwright) against a running `gateway serve` on
loopback, with Dovecot as the mailbox's server, a local OAuth2 authorization server
and the in-process IMAP server taking its tokens over XOAUTH2.

One person's day, in order: sign in and change the one-time password; connect an
"Other" mailbox against Dovecot and watch the first sync reach the end; find the
matched mail in the Inbox, open it, read "Why is this here?"; open an HTML mail
with a script, an onerror handler and a remote image, and see that nothing ran and
nothing was fetched from outside; change the Dovecot password, see the reconnect
banner, reconnect from it; connect Gmail with OAuth (first refusing consent, then
allowing); see one-way sync offered only on Pro and Enterprise; delete a mailbox;
and a member who cannot open the admin's message by its URL. Then every main page
at 375 and 1440 px: a screenshot in the artifacts folder, nothing scrolling
sideways, and no serious or critical axe-core violation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.accounts import set_password
from gateway.cli import main
from gateway.config import load_config
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.mail_invites import invites_in
from gateway.meetings import Origin, apply_invite
from gateway.models import Account, Message
from gateway.vault import Vault
from outbound.sending_domains import add_domain
from tests.helpers.browser import WIDTHS, artifacts, axe_problems, chromium, overflows
from tests.helpers.mail import make_message
from tests.helpers.serve import start
from tests.peers import invites
from tests.peers.dns import ZoneServer
from tests.peers.dovecot import Dovecot
from tests.peers.imap_faults import FaultyImap
from tests.peers.oauth_server import AuthServer

PASSWORD = "the admin's own long password"
BOB = "bob's own long password"
HOSTILE = (
    b"From: Carol <carol@client.com>\r\nTo: root@acme.com\r\nSubject: Big news\r\n"
    b"Date: Wed, 25 Nov 2026 08:00:00 +0000\r\nMessage-ID: <news@client.com>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><script>parent.postMessage('ran','*');document.title='ran'</script>"
    b"</head><body><h1>Big news</h1>"
    b'<img src="http://tracker.example/open.gif">'
    b'<img src="x" onerror="fetch(\'http://tracker.example/err\')">'
    b"<p>Read on.</p></body></html>\r\n"
)


def cli(config_file: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--config", str(config_file), *args]) == 0
    return capsys.readouterr().out


@contextmanager
def served(config_file: Path) -> Iterator[str]:
    before = set(config_file.parent.glob("serve-*.log"))
    proc = start(config_file, "--roles", "web,imap,pipeline")
    try:
        log = max(
            set(config_file.parent.glob("serve-*.log")) - before, key=lambda p: p.stat().st_mtime
        )
        port = re.search(rb"web: listening on http://[\d.]+:(\d+)", log.read_bytes())
        assert port, log.read_text()
        yield f"http://127.0.0.1:{int(port.group(1))}"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def until(check: Any, page: Any, seconds: float = 60.0, reload: bool = True) -> None:
    """Reload `page` until `check()` holds (the gateway works in the background)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting on {page.url}"
        time.sleep(1.0)
        if reload:
            page.reload()


@pytest.fixture
def world(
    tmp_path: Path,
    database_url: str,
    dovecot_server: Dovecot,
    zone_server: ZoneServer,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[dict[str, Any]]:
    imap = FaultyImap()
    imap.add_user("root@gmail.example")
    auth = AuthServer(imap)
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[paths]\nvar_dir = "var"\n[database]\nurl = "{database_url}"\n'
        '[web]\nlisten = "127.0.0.1:0"\n'
        '[security]\nallowed_private_networks = ["127.0.0.0/8"]\n'
        # Every DNS question to the tests' own server: nothing leaves loopback.
        f'[dns]\nnameservers = ["{zone_server.address}"]\ntimeout = 1.0\n'
        "[imap]\ntimeout = 10.0\nbackoff_max = 2.0\npoll_interval = 2.0\n"
        f'[oauth2]\ngoogle_client_id = "{auth.client_id}"\n'
        f'google_client_secret = "{auth.client_secret}"\n'
        f'google_authorize_url = "{auth.url}/authorize"\n'
        f'google_token_url = "{auth.url}/token"\ntimeout = 5.0\n',
        encoding="utf-8",
    )
    out = cli(config_file, "init", "--admin-email", "root@acme.com", capsys=capsys)
    one_time = re.search(r"one-time password \(change it at first sign-in\): (\S+)", out)
    assert one_time, out
    cli(config_file, "user", "add", "bob@acme.com", "--name", "Bob", capsys=capsys)
    config = load_config(config_file)
    db = Database(config.database_url)
    with db.session() as session:
        set_password(session, config, "bob@acme.com", BOB)
    cli(config_file, "contacts", "add", "carol@client.com", "--name", "Carol", capsys=capsys)
    user = f"e2e{time.monotonic_ns()}"
    dovecot_server.add_user(user, "dovecot-pass-1")
    dovecot_server.append(
        user,
        "INBOX",
        [
            make_message(to="root@acme.com", subject="Proposal", message_id="<p@client.com>"),
            make_message(from_="x@nowhere.example", subject="Unrelated", message_id="<u@x.ex>"),
            HOSTILE,
        ],
    )
    try:
        with served(config_file) as url:
            yield {
                "url": url,
                "config_file": config_file,
                "db": db,
                "dovecot": dovecot_server,
                "user": user,
                "imap": imap,
                "auth": auth,
                "one_time": one_time.group(1),
            }
    finally:
        db.dispose()
        auth.stop()
        imap.stop()


def sign_in(page: Any, url: str, email: str, password: str, new: str | None = None) -> None:
    page.goto(f"{url}/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    if new is not None:
        assert page.url.endswith("/account/password")
        page.fill("#current", password)
        page.fill("#new", new)
        page.fill("#again", new)
        page.click("form[action='/account/password'] button[type=submit]")
        assert page.url.endswith("/?changed=1")


def test_a_persons_day_in_the_pages(world: dict[str, Any]) -> None:
    url, db = world["url"], world["db"]
    shots = artifacts("screenshots")
    outside: list[str] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if urlsplit(r.url).hostname not in ("127.0.0.1", None)
                else None
            ),
        )
        page = context.new_page()
        errors: list[str] = []

        def console(message: Any) -> None:
            where = str(message.location.get("url", ""))
            if message.type == "error" and where.startswith(url):  # the gateway's own pages
                errors.append(f"{message.text} {where}")

        page.on("console", console)

        # 1. Sign in with the one-time password, and choose one's own.
        sign_in(page, url, "root@acme.com", world["one_time"], new=PASSWORD)

        # 2. Connect "Other" against Dovecot; the first sync runs to the end.
        page.goto(f"{url}/mailboxes")
        page.click("text=Connect email")
        assert page.url.endswith("/mailboxes/connect")
        page.click("a.tile[href='/mailboxes/connect/other']")
        assert page.is_disabled("input[name=sync][value=one_way]")  # the growth plan
        assert page.locator("text=Available on Pro and Enterprise plans.").first.is_visible()
        page.fill("#email", "root@acme.com")
        page.fill("#password", "dovecot-pass-1")
        page.fill("#username", world["user"])
        page.fill("#imap_host", "127.0.0.1")
        page.fill("#imap_port", str(world["dovecot"].port))
        page.select_option("#imap_security", "none")
        page.fill("#smtp_host", "")
        page.click("button[value=connect]")
        assert page.url.endswith("/mailboxes?done=connected"), page.url
        badge = page.locator("[data-field=badge]").first
        until(lambda: badge.inner_text() == "Live", page, reload=False)  # progress.js
        summary = page.locator("[data-field=summary]").first.inner_text()
        assert summary.startswith("3 of 3 scanned · 2 with a contact · 2 fetched"), summary
        page.screenshot(path=str(shots / "flow-mailbox-live.png"), full_page=True)

        # 3. The matched mail is in the Inbox; its page says why it is there.
        page.goto(f"{url}/inbox")
        until(lambda: "Proposal" in page.inner_text("main"), page)
        assert "Unrelated" not in page.inner_text("main")
        page.click("text=Proposal")
        assert page.locator("h1").inner_text() == "Proposal"
        why = page.locator("details.why").inner_text()
        assert "Why is this here?" in why and "carol@client.com" in why
        proposal_url = page.url

        # 4. The HTML mail: nothing runs, nothing is fetched from outside.
        page.goto(f"{url}/inbox")
        page.click("text=Big news")
        frame = page.frame_locator("iframe.mail-body")
        assert frame.locator("h1").inner_text() == "Big news"
        assert "Show 1 remote image" in page.inner_text("main")
        page.wait_for_timeout(500)
        assert page.title() != "ran"
        page.screenshot(path=str(shots / "flow-html-mail.png"), full_page=True)

        # 5. The password changes at the server: a banner on every page, fixed from it.
        world["dovecot"].set_password(world["user"], "dovecot-pass-2")
        world["dovecot"].kick(world["user"])
        page.goto(f"{url}/mailboxes")
        page.click("text=Sync now")
        until(lambda: page.locator(".banner").count() > 0, page)
        page.goto(f"{url}/contacts")
        assert "root@acme.com needs reconnecting" in page.locator(".banner").inner_text()
        page.click(".banner a.button")
        assert re.search(r"/mailboxes/\d+/edit$", page.url)
        page.fill("#password", "dovecot-pass-2")
        page.click("form[action$='/edit'] button[type=submit]")
        assert page.url.endswith("/mailboxes?done=reconnected")
        assert page.locator(".banner").count() == 0

        # 6. Gmail with OAuth: consent refused, then given.
        page.goto(f"{url}/mailboxes/connect")
        page.click("a.tile[href='/mailboxes/connect/gmail']")

        def oauth(decision: str) -> None:
            page.fill("#oauth-email", "root@gmail.example")
            page.click("details.servers >> nth=0")
            page.fill("#oauth-imap_host", "127.0.0.1")
            page.fill("#oauth-imap_port", str(world["imap"].port))
            page.select_option("#oauth-imap_security", "none")
            page.fill("#oauth-smtp_host", "")
            page.click("text=Sign in with Google")
            assert page.url.startswith(world["auth"].url), page.url
            page.click(f"button[value={decision}]")

        oauth("deny")
        assert "You did not allow the gateway" in page.inner_text("main")
        page.click("text=Try again")
        oauth("allow")
        assert page.url.endswith("/mailboxes?done=connected"), page.url
        cards = page.locator("section.mailbox")
        assert cards.count() == 2 and "root@gmail.example" in page.inner_text("main")

        # 7. Delete a mailbox: it says what stays, then it is gone.
        gmail = page.locator("section.mailbox", has_text="root@gmail.example")
        gmail.locator("text=Delete").click()
        assert "mail" in page.inner_text("main").lower()
        page.click("form[action$='/delete'] button[type=submit]")
        assert page.url.endswith("/mailboxes?done=removed")
        assert "root@gmail.example" not in page.inner_text("main")

        # 8. A member cannot open the admin's message by its URL.
        member = browser.new_context(viewport={"width": 1440, "height": 900})
        bob = member.new_page()
        sign_in(bob, url, "bob@acme.com", BOB)
        bob.goto(proposal_url)
        assert bob.locator("h1").inner_text() == "No such message"
        assert "Proposal" not in bob.inner_text("main")
        member.close()
        assert errors == [], errors
        context.close()

    assert outside == [], f"requests left loopback: {outside}"
    with db.read() as session:
        assert session.query(Message).count() == 2  # the two with a contact, fetched


def test_main_pages_at_phone_and_desktop_widths(world: dict[str, Any]) -> None:
    """A screenshot of each main page at 375 and 1440 px (artifacts/screenshots),
    nothing scrolling sideways, no serious or critical axe-core violation."""
    url = world["url"]
    shots = artifacts("screenshots")
    problems: dict[str, list[str]] = {}
    config = load_config(world["config_file"])
    with world["db"].session() as session:  # a sending domain, for its DNS page
        account = session.query(Account).one()
        add_domain(session, Vault.load(config.secret_key_file), account, "acme.example")
        # A meeting with a contact and a room, for the Meetings page.
        directory = AccountDirectory.load(session, account, config)
        for invite in invites_in(invites.google()).invites:
            apply_invite(session, config, directory, invite, Origin("mail"))
    with chromium() as browser:
        setup = browser.new_context()
        sign_in(setup.new_page(), url, "root@acme.com", world["one_time"], new=PASSWORD)
        state = setup.storage_state()
        setup.close()
        for width in WIDTHS:
            # bypass_csp: axe-core is injected; the pages' CSP would refuse it, rightly.
            context = browser.new_context(
                viewport={"width": width, "height": 900}, storage_state=state, bypass_csp=True
            )
            page = context.new_page()
            pages = [
                "/",
                "/inbox",
                "/inbox/unattached",
                "/contacts",
                "/meetings",
                "/mailboxes",
                "/mailboxes/connect",
                "/mailboxes/connect/other",
                "/mailboxes/connect/gmail",
                "/settings",
                "/users",
                "/dns",
                "/dns/acme.example",
                "/tokens",
                "/webhooks",
            ]
            for path in pages:
                page.goto(url + path)
                assert page.locator("h1").count() >= 1, path
                name = path.strip("/").replace("/", "-") or "home"
                page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
                assert not overflows(page), f"{path} scrolls sideways at {width} px"
                found = axe_problems(page)
                if found:
                    problems[f"{path} at {width}"] = found
            context.close()
        signed_out = browser.new_context(viewport={"width": 375, "height": 900}, bypass_csp=True)
        page = signed_out.new_page()
        page.goto(url + "/sign-in")
        page.screenshot(path=str(shots / "sign-in-375.png"), full_page=True)
        if found := axe_problems(page):
            problems["/sign-in"] = found
        signed_out.close()
    assert problems == {}, problems


def test_the_accessibility_check_bites() -> None:
    """The check above can fail: a page with an unlabelled field, an image without
    alt text and grey-on-white text has serious violations."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_content(
            '<!doctype html><html lang="en"><title>t</title><main><img src="data:,">'
            '<input type="text"><p style="color:#ccc;background:#fff">faint</p></main></html>'
        )
        found = " ".join(axe_problems(page))
    assert "image-alt" in found and "label" in found and "color-contrast" in found
