"""/api/v1/mailboxes over real HTTP, against a real Dovecot: connect (saved only when
the sign-in worked, the CLI's error reasons), sync now and the sync status's phases,
reconnect_required with its reason, reconnect, delete; members and other accounts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.accounts import add_user, create_account, get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.imap.connection import AUTH, REFUSED, THROTTLED, MailboxError
from gateway.imap.reasons import reconnect_reason
from gateway.models import Event, Mailbox, MailboxFolder, utcnow
from gateway.tokens import create_account_token
from inbound.imap.progress import sync_status
from tests.helpers.browser_session import Person
from tests.helpers.imap import contacts, serving, sync
from tests.helpers.mail import make_message
from tests.helpers.wait import eventually
from tests.helpers.web import ApiClient, running_web
from tests.peers.dovecot import ImapUser


@dataclass
class Site:
    api: ApiClient
    db: Database
    people: list[Person] = field(default_factory=list)

    def call(self, method: str, path: str, token: str | None = "admin", **kw: Any) -> Any:
        return self.api.call(method, path, token, **kw)

    def member(self) -> Person:
        bob = Person(self.api.url)
        self.people.append(bob)
        assert bob.sign_in("bob@acme.com", "bob's own long password").status_code == 303
        return bob


@pytest.fixture
def site(db: Database, imap_config: Config, account_id: int) -> Iterator[Site]:
    with db.session() as session:
        set_password(session, imap_config, "bob@acme.com", "bob's own long password")
        other = create_account(session, "other")
        add_user(session, imap_config, other, "olga@other.test", "Olga")
        tokens = {
            "admin": create_account_token(session, account_id, ["read", "write"]).token,
            "read": create_account_token(session, account_id, ["read"]).token,
            "other": create_account_token(session, other.id, ["read", "write"]).token,
        }
    with running_web(db, imap_config) as url:
        found = Site(ApiClient(url, tokens), db)
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def _fields(user: ImapUser, password: str) -> dict[str, Any]:
    return {
        "email": "bob@acme.com",
        "password": password,
        "imap_host": "127.0.0.1",
        "imap_port": user.server.port,
        "imap_security": "none",
        "username": user.name,
    }


def _status(site: Site, mailbox_id: int) -> dict[str, Any]:
    answer = site.call("GET", f"/mailboxes/{mailbox_id}/sync-status")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_connect_sync_reconnect_and_delete(
    site: Site, db: Database, imap_config: Config, account_id: int, imap_user: ImapUser
) -> None:
    contacts(db, imap_config, account_id, "carol@client.com")
    refused = site.call("POST", "/mailboxes", json=_fields(imap_user, "wrong"))
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("#mailbox-refused") and problem["reason"] == "auth"
    assert problem["step"] == "imap_sign_in"
    assert "refused the user name or password" in problem["detail"]
    assert site.call("GET", "/mailboxes").json()["data"] == []  # nothing saved

    made = site.call("POST", "/mailboxes", json=_fields(imap_user, imap_user.password))
    assert made.status_code == 201, made.text
    mailbox = made.json()
    assert mailbox["state"] == "active" and mailbox["imap"]["port"] == imap_user.server.port
    assert imap_user.password not in made.text  # credentials are never answered
    again = site.call("POST", "/mailboxes", json=_fields(imap_user, imap_user.password))
    assert again.status_code == 409
    assert site.call("POST", "/mailboxes", "read", json=_fields(imap_user, "x")).status_code == 403
    assert _status(site, mailbox["id"])["phase"] == "connecting"

    imap_user.append("INBOX", make_message(from_="carol@client.com", subject="hi"))
    imap_user.append("INBOX", make_message(from_="someone@else.example", subject="other"))
    with serving(db, imap_config):
        eventually(lambda: _status(site, mailbox["id"])["phase"] == "live", seconds=30)
        status = _status(site, mailbox["id"])
        assert (status["scanned"], status["matched"], status["fetched"]) == (2, 1, 1)
        assert status["missing"] == 0 and status["estimate_seconds"] is None
        imap_user.append("INBOX", make_message(from_="carol@client.com", subject="more"))
        asked = site.call("POST", f"/mailboxes/{mailbox['id']}/sync")
        assert asked.status_code == 202 and asked.json()["status"].endswith("/sync-status")
        eventually(lambda: _status(site, mailbox["id"])["fetched"] == 2, seconds=30)
        listed = site.call("GET", "/messages", params={"mailbox_id": mailbox["id"]}).json()
        assert sorted(m["subject"] for m in listed["data"]) == ["hi", "more"]
    # The history is in: mailbox.sync_completed, once (later passes write none).
    with db.read() as session:
        completed = session.scalars(
            select(Event).where(Event.kind == "mailbox.sync_completed")
        ).all()
    assert len(completed) == 1
    assert completed[0].payload["email"] == "bob@acme.com"
    assert (completed[0].payload["scanned"], completed[0].payload["fetched"]) == (2, 1)

    # The password changes at the provider: the next sign-in is refused.
    imap_user.server.set_password(imap_user.name, "new-secret")
    with pytest.raises(MailboxError):
        sync(db, imap_config)
    status = _status(site, mailbox["id"])
    assert status["phase"] == "reconnect_required" and status["reason"] == "password_changed"
    assert "refused" in status["last_error"]
    with db.read() as session:
        event = session.scalars(
            select(Event).where(Event.kind == "mailbox.reconnect_required")
        ).one()
    assert event.payload["reason"] == "password_changed" and "refused" in event.payload["detail"]
    shown = site.call("GET", f"/mailboxes/{mailbox['id']}").json()
    assert (
        shown["state"] == "reconnect_required" and shown["reconnect_reason"] == "password_changed"
    )
    assert site.call("POST", f"/mailboxes/{mailbox['id']}/sync").status_code == 409

    wrong = site.call("POST", f"/mailboxes/{mailbox['id']}/reconnect", json={"password": "no"})
    assert wrong.status_code == 422 and wrong.json()["reason"] == "auth"
    oauth = {"oauth2_tokens": {"access_token": "x"}}
    assert site.call("POST", f"/mailboxes/{mailbox['id']}/reconnect", json=oauth).status_code == 422
    back = site.call(
        "POST", f"/mailboxes/{mailbox['id']}/reconnect", json={"password": "new-secret"}
    )
    assert back.status_code == 200 and back.json()["state"] == "active"
    assert back.json()["reconnect_reason"] is None

    assert site.call("DELETE", f"/mailboxes/{mailbox['id']}", "other").status_code == 404
    assert site.call("DELETE", f"/mailboxes/{mailbox['id']}").status_code == 204
    assert site.call("GET", f"/mailboxes/{mailbox['id']}").status_code == 404
    kept = site.call("GET", "/messages", params={"contact": "carol@client.com"}).json()
    assert {m["subject"] for m in kept["data"]} >= {"hi", "more"}  # mail on contacts stays


def _mailbox(db: Database, config: Config, owner: str, email: str) -> int:
    with db.session() as session:
        user = get_user(session, config, owner)
        box = Mailbox(
            account_id=user.account_id,
            user_id=user.id,
            email=email,
            provider="other",
            imap_host="imap.example.test",
            imap_port=993,
            imap_security="tls",
            username=email,
        )
        session.add(box)
        session.flush()
        return box.id


def test_members_and_other_accounts(site: Site, db: Database, imap_config: Config) -> None:
    bobs = _mailbox(db, imap_config, "bob@acme.com", "bob@acme.com")
    anns = _mailbox(db, imap_config, "ann@acme.com", "ann@acme.com")
    bob = site.member()
    assert [m["id"] for m in bob.api("GET", "/mailboxes").json()["data"]] == [bobs]
    assert bob.api("GET", f"/mailboxes/{anns}").status_code == 404
    assert bob.api("GET", f"/mailboxes/{anns}/sync-status").status_code == 404
    assert bob.api("POST", f"/mailboxes/{anns}/sync").status_code == 404
    assert bob.api("DELETE", f"/mailboxes/{anns}").status_code == 404
    ann_id = site.call("GET", f"/mailboxes/{anns}").json()["user_id"]
    theirs = {"email": "ann@acme.com", "password": "x", "user_id": ann_id}
    assert bob.api("POST", "/mailboxes", json=theirs).status_code == 403
    assert bob.api("POST", f"/mailboxes/{bobs}/sync").status_code == 202
    assert [m["id"] for m in site.call("GET", "/mailboxes").json()["data"]] == [bobs, anns]
    assert site.call("GET", "/mailboxes", "other").json()["data"] == []
    for path in (f"/mailboxes/{bobs}", f"/mailboxes/{bobs}/sync-status"):
        assert site.call("GET", path, "other").status_code == 404
    assert site.call("POST", f"/mailboxes/{bobs}/sync", "other").status_code == 404
    both = {"email": "x@acme.com", "password": "x", "oauth2_tokens": {"access_token": "y"}}
    assert site.call("POST", "/mailboxes", json=both).status_code == 422


def test_the_phases_of_a_sync(db: Database, config: Config, account_id: int) -> None:
    box_id = _mailbox(db, config, "bob@acme.com", "bob@acme.com")
    with db.session() as session:
        box = session.get_one(Mailbox, box_id)
        assert sync_status(box)["phase"] == "connecting"
        box.sync_phase = "listing_folders"
        assert sync_status(box)["phase"] == "listing_folders"
        box.created_at = utcnow() - timedelta(seconds=100)
        box.folders = [
            MailboxFolder(role="inbox", name="INBOX", total=1000, scanned=200, matched=5),
            MailboxFolder(role="sent", name="Sent", total=0, initial_done=True),
        ]
        session.flush()
        status = sync_status(box, now=box.created_at + timedelta(seconds=100))
        assert status["phase"] == "importing_history"
        assert (status["scanned"], status["total"], status["matched"]) == (200, 1000, 5)
        assert status["estimate_seconds"] == 400  # 800 left at 2 a second
        box.folders[0].initial_done = True
        assert sync_status(box)["phase"] == "live"
        box.last_error = "TimeoutError: timed out"
        assert sync_status(box)["phase"] == "stalled"
        box.state, box.reconnect_reason = "reconnect_required", "oauth_revoked"
        status = sync_status(box)
        assert status["phase"] == "reconnect_required" and status["reason"] == "oauth_revoked"


@pytest.mark.parametrize(
    ("kind", "text", "auth", "reason"),
    [
        (
            AUTH,
            "imap.example:993 refused the user name or password",
            "password",
            "password_changed",
        ),
        (AUTH, "the provider refused the token: invalid_grant", "oauth2", "oauth_revoked"),
        (AUTH, "[ALERT] IMAP access is disabled for your domain", "password", "imap_disabled"),
        (AUTH, "User is authenticated but not connected.", "oauth2", "imap_disabled"),
        (AUTH, "You are yet to enable IMAP for your account", "password", "imap_disabled"),
        (AUTH, "[LIMIT] too many simultaneous connections", "password", "throttled"),
        (
            THROTTLED,
            "Request is throttled. Suggested Backoff Time: 60000 milliseconds",
            "oauth2",
            "throttled",
        ),
        (REFUSED, "IMAP host 10.0.0.1 is a private address", "password", "not_allowed"),
    ],
)
def test_reconnect_reasons(kind: str, text: str, auth: str, reason: str) -> None:
    assert reconnect_reason(MailboxError(kind, text), auth) == reason
