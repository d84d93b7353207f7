"""The sign-in pages in headless Chromium (Playwright): what a person sees and does,
at a phone's width and a desktop's. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.accounts import add_user
from gateway.config import Config
from gateway.db import Database
from gateway.models import Account
from gateway.vault import ensure_key_file
from tests.helpers.browser import chromium
from tests.helpers.web import running_web

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize("width", [375, 1440])
def test_first_sign_in_changes_the_one_time_password_then_signs_out(
    browser: object, db: Database, config: Config, account_id: int, tmp_path: Path, width: int
) -> None:
    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        account = session.get_one(Account, account_id)
        _, one_time = add_user(session, config, account, "root@acme.com", "Root", admin=True)
    assert one_time is not None
    with running_web(db, config) as url:
        page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        page.goto(f"{url}/")
        assert page.url.endswith("/sign-in?next=/")
        page.fill("#email", "root@acme.com")
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").inner_text() == (
            "The email address or the password is not right."
        )
        assert page.input_value("#email") == "root@acme.com"
        page.screenshot(path=str(tmp_path / f"sign-in-error-{width}.png"), full_page=True)
        page.fill("#password", one_time)
        page.click("button[type=submit]")
        assert page.url.endswith("/account/password")
        assert page.locator("h1").inner_text() == "Choose your password"
        page.screenshot(path=str(tmp_path / f"password-{width}.png"), full_page=True)
        page.fill("#current", one_time)
        page.fill("#new", "root's own long password")
        page.fill("#again", "root's own long password")
        page.click("form[action='/account/password'] button[type=submit]")
        assert page.url.endswith("/?changed=1")
        assert page.locator("[role=status]").inner_text() == "Your password is changed."
        assert "root@acme.com" in page.locator(".facts").inner_text()
        page.screenshot(path=str(tmp_path / f"home-{width}.png"), full_page=True)
        for admin_page in ("users", "tokens", "webhooks"):
            page.goto(f"{url}/{admin_page}")
            assert page.locator("h1").inner_text() in ("Users", "API tokens", "Webhooks")
            page.screenshot(path=str(tmp_path / f"{admin_page}-{width}.png"), full_page=True)
            wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            assert wide is False, admin_page
        page.goto(f"{url}/?changed=1")
        # Nothing overflows sideways at this width.
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False
        page.click("text=Sign out")
        assert page.url.endswith("/sign-in?out=1")
        assert page.locator("[role=status]").inner_text() == "You are signed out."
        page.goto(f"{url}/")
        assert "/sign-in" in page.url


@pytest.mark.parametrize("width", [375, 1440])
def test_mailboxes_and_settings_pages(
    browser: object, db: Database, config: Config, account_id: int, tmp_path: Path, width: int
) -> None:
    """The Mailboxes page shows a first sync's progress and keeps it fresh while open
    (its script, allowed by the page's CSP: no console error); Email settings too."""
    from gateway.accounts import get_user, set_password
    from gateway.models import Mailbox, MailboxFolder

    ensure_key_file(config.secret_key_file)
    with db.session() as session:
        set_password(session, config, "bob@acme.com", "a long enough password")
        bob = get_user(session, config, "bob@acme.com")
        box = Mailbox(
            account_id=account_id,
            user_id=bob.id,
            email="bob@acme.com",
            provider="zoho",
            imap_host="imap.zoho.com",
            imap_port=993,
            imap_security="tls",
            username="bob@acme.com",
        )
        box.folders = [
            MailboxFolder(
                role="inbox", name="INBOX", total=1000, scanned=420, matched=31, fetched=31
            )
        ]
        session.add(box)
        session.flush()
        folder_id = box.folders[0].id
    with running_web(db, config) as url:
        page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{url}/sign-in")
        page.fill("#email", "bob@acme.com")
        page.fill("#password", "a long enough password")
        page.click("button[type=submit]")
        page.goto(f"{url}/mailboxes")
        assert page.locator("[data-field=badge]").inner_text() == "Syncing 42%"
        assert page.locator("nav.sections a[aria-current=page]").inner_text() == "Mailboxes"
        page.screenshot(path=str(tmp_path / f"mailboxes-{width}.png"), full_page=True)
        with db.session() as session:
            session.get_one(MailboxFolder, folder_id).scanned = 900
        playwright_api.expect(page.locator("[data-field=badge]")).to_have_text(
            "Syncing 90%", timeout=10_000
        )
        assert "900 of 1000 scanned" in page.locator("[data-field=summary]").inner_text()
        page.goto(f"{url}/contacts")
        assert page.locator("h1").inner_text() == "Contacts"
        page.screenshot(path=str(tmp_path / f"contacts-{width}.png"), full_page=True)
        page.goto(f"{url}/settings")
        assert "@" in page.locator("#dropbox").inner_text()
        page.screenshot(path=str(tmp_path / f"settings-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False
        assert errors == [], errors
