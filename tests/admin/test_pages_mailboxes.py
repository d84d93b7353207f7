"""The Mailboxes and Email settings pages over real HTTP: who sees which mailbox,
Sync now, Edit to reconnect against a real Dovecot, Delete after saying what
stays, the reconnect banner on every page; the dropbox address and its rotation,
contact settings an admin changes and a member only sees; CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from gateway.accounts import dropbox_address, get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Account, Mailbox
from tests.helpers.browser_session import Person
from tests.helpers.imap import connect_mailbox
from tests.helpers.web import running_web
from tests.peers.dovecot import ImapUser


@dataclass
class Site:
    url: str
    db: Database
    config: Config
    people: list[Person] = field(default_factory=list)

    def person(self, email: str) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in(email, "a long enough password").status_code == 303
        return found


@pytest.fixture
def site(db: Database, imap_config: Config, account_id: int) -> Iterator[Site]:
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, imap_config, email, "a long enough password")
        get_user(session, imap_config, "ann@acme.com").is_admin = True
    with running_web(db, imap_config) as url:
        found = Site(url, db, imap_config)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def _mailbox(site: Site, owner: str, email: str, state: str = "active") -> int:
    with site.db.session() as session:
        user = get_user(session, site.config, owner)
        box = Mailbox(
            account_id=user.account_id,
            user_id=user.id,
            email=email,
            provider="other",
            imap_host="imap.acme.test",
            imap_port=993,
            imap_security="tls",
            username=email,
            state=state,
            reconnect_reason="password_changed" if state != "active" else None,
            last_error="imap.acme.test:993 refused the user name or password"
            if state != "active"
            else None,
        )
        session.add(box)
        session.flush()
        return box.id


def test_who_sees_which_mailbox_and_the_empty_state(site: Site) -> None:
    bob = site.person("bob@acme.com")
    empty = bob.get("/mailboxes")
    assert empty.status_code == 200 and "No mailbox is connected yet" in empty.text
    bobs = _mailbox(site, "bob@acme.com", "bob@acme.com")
    anns = _mailbox(site, "ann@acme.com", "ann@acme.com")
    mine = bob.get("/mailboxes").text
    assert "bob@acme.com" in mine and "ann@acme.com</h2>" not in mine and "Connecting" in mine
    ann = site.person("ann@acme.com")
    everyone = ann.get("/mailboxes").text
    assert everyone.count('class="card mailbox"') == 2 and "Owner" in everyone
    for path in (f"/mailboxes/{anns}/edit", f"/mailboxes/{anns}/delete"):
        assert bob.get(path).status_code == 404
    assert bob.form("/mailboxes", f"/mailboxes/{anns}/delete").status_code == 404
    asked = bob.form("/mailboxes", f"/mailboxes/{bobs}/sync")
    assert asked.headers["location"] == "/mailboxes?done=synced"
    with site.db.read() as session:
        assert session.get_one(Mailbox, bobs).sync_requested_at is not None
    assert "starts within seconds" in bob.get("/mailboxes?done=synced").text
    # A link cannot make the page say something: only known codes are shown.
    assert "hacked" not in bob.get("/mailboxes?done=hacked").text


def test_delete_says_what_stays_and_needs_the_form_token(site: Site) -> None:
    bobs = _mailbox(site, "bob@acme.com", "bob@acme.com")
    bob = site.person("bob@acme.com")
    confirm = bob.get(f"/mailboxes/{bobs}/delete").text
    assert "Sync stops and the password is deleted. Mail already on contacts stays." in confirm
    forged = bob.client.post(f"/mailboxes/{bobs}/delete", data={"csrf_token": "forged"})
    assert forged.status_code == 303
    with site.db.read() as session:
        assert session.get(Mailbox, bobs) is not None
    gone = bob.form(f"/mailboxes/{bobs}/delete", f"/mailboxes/{bobs}/delete")
    assert gone.headers["location"] == "/mailboxes?done=removed"
    with site.db.read() as session:
        assert session.get(Mailbox, bobs) is None


def test_the_reconnect_banner_and_reconnecting(
    site: Site, db: Database, imap_config: Config, imap_user: ImapUser
) -> None:
    mailbox = connect_mailbox(db, imap_config, imap_user)
    with db.session() as session:
        row = session.get_one(Mailbox, mailbox.id)
        row.state, row.reconnect_reason = "reconnect_required", "password_changed"
        row.last_error = "127.0.0.1 refused the user name or password"
    imap_user.server.set_password(imap_user.name, "the new one")
    bob = site.person("bob@acme.com")
    for path in ("/", "/mailboxes", "/settings"):
        text = bob.get(path).text
        assert "bob@acme.com needs reconnecting" in text, path
        assert f'href="/mailboxes/{mailbox.id}/edit"' in text
    edit = bob.get(f"/mailboxes/{mailbox.id}/edit").text
    assert "The server refused the password" in edit
    wrong = bob.form(
        f"/mailboxes/{mailbox.id}/edit", f"/mailboxes/{mailbox.id}/edit", password="nope"
    )
    assert wrong.status_code == 422 and "refused the user name or password" in wrong.text
    done = bob.form(
        f"/mailboxes/{mailbox.id}/edit", f"/mailboxes/{mailbox.id}/edit", password="the new one"
    )
    assert done.headers["location"] == "/mailboxes?done=reconnected"
    after = bob.get("/mailboxes?done=reconnected").text
    assert "needs reconnecting" not in after and "sync resumes where it stopped" in after
    ann = site.person("ann@acme.com")
    assert "needs reconnecting" not in ann.get("/").text  # the banner is the owner's


def test_email_settings(site: Site) -> None:
    bob = site.person("bob@acme.com")
    with site.db.read() as session:
        before = dropbox_address(site.config, get_user(session, site.config, "bob@acme.com"))
    page = bob.get("/settings").text
    assert before in page and "stops working at once" in page and "An admin changes these." in page
    rotated = bob.form("/settings", "/settings/dropbox")
    assert rotated.headers["location"] == "/settings?done=rotated"
    with site.db.read() as session:
        after = dropbox_address(site.config, get_user(session, site.config, "bob@acme.com"))
    assert after != before and after in bob.get("/settings?done=rotated").text
    refused = bob.form("/settings", "/settings/contacts", auto_create="on", blocked_domains="")
    assert refused.status_code == 403
    ann = site.person("ann@acme.com")
    bad = ann.form("/settings", "/settings/contacts", blocked_domains="ok.com\nnot a@domain")
    assert bad.status_code == 422 and "is not a domain name" in bad.text
    saved = ann.form(
        "/settings", "/settings/contacts", auto_create="on", blocked_domains="Spam.COM.\nspam.com"
    )
    assert saved.headers["location"] == "/settings?done=saved"
    with site.db.read() as session:
        account = session.scalars(select(Account).where(Account.name == "acme")).one()
        assert account.auto_create_contacts and account.blocked_domains == ["spam.com"]
    assert "spam.com" in bob.get("/settings").text


def test_change_email_server(site: Site) -> None:
    bob = site.person("bob@acme.com")
    page = bob.get("/settings").text
    assert "Change email server" in page and "DNS setup page" in page
    # No sending mailbox and no relay yet: both are shown disabled, and refused.
    assert re.search(r'value="mailbox"[^>]* disabled', page)
    assert re.search(r'value="relay"[^>]* disabled', page)
    for route, words in (("mailbox", "Connect a mailbox"), ("relay", "No relay"), ("x", "Choose")):
        refused = bob.form("/settings", "/settings/route", route=route)
        assert refused.status_code == 422 and words in refused.text
    done = bob.form("/settings", "/settings/route", route="direct")
    assert done.headers["location"] == "/settings?done=route"
    with site.db.read() as session:
        assert get_user(session, site.config, "bob@acme.com").route == "direct"
    assert "the gateway&#39;s own delivery" in bob.get("/settings?done=route").text
    with site.db.session() as session:
        user = get_user(session, site.config, "bob@acme.com")
        session.add(
            Mailbox(
                account_id=user.account_id,
                user_id=user.id,
                email="bob@acme.com",
                provider="other",
                imap_host="imap.acme.test",
                imap_port=993,
                imap_security="tls",
                smtp_host="smtp.acme.test",
                smtp_port=465,
                smtp_security="tls",
                username="bob@acme.com",
                credentials="x",
            )
        )
    assert bob.form("/settings", "/settings/route", route="mailbox").status_code == 303
    back_to_default = bob.form("/settings", "/settings/route", route="")
    assert back_to_default.status_code == 303
    with site.db.read() as session:
        assert get_user(session, site.config, "bob@acme.com").route is None
