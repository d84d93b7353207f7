"""The sign-in pages in headless Chromium (Playwright): what a person sees and does,
at a phone's width and a desktop's. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.accounts import add_user
from gateway.config import Config
from gateway.db import Database
from gateway.models import Account
from gateway.vault import ensure_key_file
from tests.helpers.web import running_web

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


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
        # Nothing overflows sideways at this width.
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert overflow is False
        page.click("text=Sign out")
        assert page.url.endswith("/sign-in?out=1")
        assert page.locator("[role=status]").inner_text() == "You are signed out."
        page.goto(f"{url}/")
        assert "/sign-in" in page.url
