"""/api/v1/messages and /api/v1/conversations over real HTTP: lists by contact,
conversation, mailbox, direction and dates, a page at a time; one message with its
text, contacts, sources and attachments; the raw .eml and attachment downloads;
a member sees only their own mail, another account none of it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.accounts import add_user, create_account, get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.message_queries import MessageFilter, Reader, message_page_query
from gateway.models import Mailbox, Source
from gateway.tokens import create_account_token
from gateway.vault import ensure_key_file
from tests.helpers.browser_session import Person
from tests.helpers.mail import make_message
from tests.helpers.pipeline import contact, push
from tests.helpers.web import ApiClient, running_web

PDF = b"%PDF-1.4 a tiny document\n%%EOF\n"
PAGE = b"<html><body><script>alert(document.cookie)</script>hi</body></html>"


def _multipart() -> bytes:
    boundary, inner = "BOUNDARY-1", "BOUNDARY-2"
    pdf = base64.b64encode(PDF).decode()
    page = base64.b64encode(PAGE).decode()
    attached = make_message(
        subject="Forwarded one", message_id="<inner@client.com>", body="Inner body.\r\n"
    ).decode()
    lines = [
        "From: Carol <carol@client.com>",
        "To: Bob <bob@acme.com>",
        "Subject: The contract",
        "Date: Tue, 24 Nov 2026 09:00:00 +0000",
        "Message-ID: <contract@client.com>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        f'Content-Type: multipart/alternative; boundary="{inner}"',
        "",
        f"--{inner}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Here is the contract, Bob.",
        f"--{inner}",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<p>Here is the <b>contract</b>, Bob.</p>",
        f"--{inner}--",
        f"--{boundary}",
        'Content-Type: application/pdf; name="contract.pdf"',
        'Content-Disposition: attachment; filename="../../etc/contract.pdf"',
        "Content-Transfer-Encoding: base64",
        "",
        pdf,
        f"--{boundary}",
        "Content-Type: text/html; charset=utf-8",
        'Content-Disposition: attachment; filename="page.html"',
        "Content-Transfer-Encoding: base64",
        "",
        page,
        f"--{boundary}",
        "Content-Type: message/rfc822",
        "",
        attached,
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


@dataclass
class Mail:
    api: ApiClient
    ids: dict[str, int]
    contacts: dict[str, int]
    mailbox: int
    people: list[Person] = field(default_factory=list)

    def get(self, path: str, token: str = "admin", **params: Any) -> Any:
        answer = self.api.call("GET", path, token, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def member(self) -> Person:
        """bob@acme.com, signed in (a member)."""
        bob = Person(self.api.url)
        self.people.append(bob)
        assert bob.sign_in("bob@acme.com", "bob's own long password").status_code == 303
        return bob


@pytest.fixture
def mail(db: Database, config: Config, account_id: int) -> Iterator[Mail]:
    ensure_key_file(config.secret_key_file)
    carol = contact(db, config, account_id, "carol@client.com", name="Carol")
    dan = contact(db, config, account_id, "dan@client.com", name="Dan")
    with db.session() as session:
        set_password(session, config, "bob@acme.com", "bob's own long password")
        bob_id = get_user(session, config, "bob@acme.com").id
        box = Mailbox(
            account_id=account_id,
            user_id=bob_id,
            email="bob@acme.com",
            provider="other",
            imap_host="imap.acme.test",
            imap_port=993,
            imap_security="tls",
            username="bob@acme.com",
        )
        session.add(box)
        session.flush()
        mailbox = box.id
        other = create_account(session, "other")
        add_user(session, config, other, "olga@other.test", "Olga")
        tokens = {
            "admin": create_account_token(session, account_id, ["read"]).token,
            "send": create_account_token(session, account_id, ["send"]).token,
            "other": create_account_token(session, other.id, ["read"]).token,
        }
    hello = make_message(subject="Hello", message_id="<hello@client.com>")
    reply = make_message(
        from_="Bob <bob@acme.com>",
        to="Carol <carol@client.com>",
        subject="Re: Hello",
        message_id="<reply@acme.com>",
        in_reply_to="<hello@client.com>",
        date="Mon, 23 Nov 2026 11:00:00 +0000",
        body="Thanks, Carol.\r\n",
    )
    ids = {
        # Stored out of order: the reply first, as a history import may.
        "reply": push(db, config, reply, source=Source.OUTBOUND, key="outbound:7").message_id,
        "hello": push(
            db, config, hello, source=Source.IMAP, key=f"imap:{mailbox}:abc:1:10"
        ).message_id,
        "contract": push(db, config, _multipart()).message_id,
        "ann": push(
            db,
            config,
            make_message(from_="Dan <dan@client.com>", to="ann@acme.com", subject="For Ann"),
            user="ann@acme.com",
        ).message_id,
    }
    assert all(ids.values())
    with running_web(db, config) as url:
        found = Mail(
            ApiClient(url, tokens),
            {k: v or 0 for k, v in ids.items()},
            {"carol": carol, "dan": dan},
            mailbox,
        )
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def _subjects(listed: dict[str, Any]) -> list[str]:
    return [m["subject"] for m in listed["data"]]


def test_a_contacts_mail_a_page_at_a_time(mail: Mail) -> None:
    carol = mail.contacts["carol"]
    everything = mail.get("/messages", contact_id=carol)
    assert _subjects(everything) == ["The contract", "Hello", "Re: Hello"]  # newest stored first
    assert everything["next_cursor"] is None
    by_address = mail.get("/messages", contact="Carol@Client.com")
    assert by_address["data"] == everything["data"]
    first = mail.get("/messages", contact_id=carol, limit=2)
    assert _subjects(first) == ["The contract", "Hello"] and first["next_cursor"]
    second = mail.get("/messages", contact_id=carol, limit=2, cursor=first["next_cursor"])
    assert _subjects(second) == ["Re: Hello"] and second["next_cursor"] is None
    # A cursor of another query, or a forged one, is a 400, never the first page again.
    other = mail.api.call(
        "GET",
        "/messages",
        "admin",
        params={"contact_id": mail.contacts["dan"], "cursor": first["next_cursor"]},
    )
    assert other.status_code == 400 and other.json()["type"].endswith("#invalid-cursor")
    forged = mail.api.call("GET", "/messages", "admin", params={"cursor": "abc.def"})
    assert forged.status_code == 400
    hello = everything["data"][1]
    assert hello["from"] == [{"name": "Carol", "email": "carol@client.com"}]
    assert hello["contacts"] == [{"id": carol, "name": "Carol", "roles": ["from"]}]
    assert hello["sources"] == ["imap"] and hello["direction"] == "incoming"
    assert (
        mail.api.call("GET", "/messages", "admin", params={"contact": "nobody@x.com"}).status_code
        == 404
    )
    assert mail.api.call("GET", "/messages", "admin", params={"limit": 201}).status_code == 422


def test_filters(mail: Mail) -> None:
    outgoing = mail.get("/messages", direction="outgoing")
    assert _subjects(outgoing) == ["Re: Hello"]
    assert "outbound" in outgoing["data"][0]["sources"]
    day = mail.get("/messages", since="2026-11-24T00:00:00Z", until="2026-11-25T00:00:00Z")
    assert _subjects(day) == ["The contract"]
    boxed = mail.get("/messages", mailbox_id=mail.mailbox)
    assert _subjects(boxed) == ["Hello"]
    assert mail.get("/messages", mailbox_id=mail.mailbox + 1000)["data"] == []
    conversation = mail.get(f"/messages/{mail.ids['hello']}")["conversation_id"]
    threaded = mail.get("/messages", conversation_id=conversation)
    assert sorted(_subjects(threaded)) == ["Hello", "Re: Hello"]
    bad = mail.api.call("GET", "/messages", "admin", params={"direction": "sideways"})
    assert bad.status_code == 422


def test_one_message_with_its_text_sources_and_attachments(mail: Mail) -> None:
    contract = mail.get(f"/messages/{mail.ids['contract']}")
    assert contract["text"].strip() == "Here is the contract, Bob."
    assert contract["snippet"] == "Here is the contract, Bob." and contract["has_html"] is True
    assert [s["source"] for s in contract["seen"]] == ["import"]
    files = contract["attachments"]
    assert [(a["number"], a["filename"], a["content_type"]) for a in files] == [
        (1, "contract.pdf", "application/pdf"),
        (2, "page.html", "text/html"),
        (3, "attachment-3.eml", "message/rfc822"),
    ]
    assert files[0]["size"] == len(PDF)
    assert mail.get(f"/messages/{mail.ids['contract']}/attachments") == files
    reply = mail.get(f"/messages/{mail.ids['reply']}")
    assert reply["deliveries"] == [7] and reply["direction"] == "outgoing"
    hello = mail.get(f"/messages/{mail.ids['hello']}")
    assert hello["seen"][0]["mailbox_id"] == mail.mailbox
    assert mail.api.call("GET", "/messages/999999", "admin").status_code == 404
    assert mail.api.call("GET", f"/messages/{mail.ids['hello']}", "send").status_code == 403
    assert mail.api.call("GET", f"/messages/{mail.ids['hello']}", None).status_code == 401


def test_raw_and_attachment_downloads(mail: Mail, db: Database) -> None:
    raw = mail.api.call("GET", f"/messages/{mail.ids['contract']}/raw", "admin")
    assert raw.status_code == 200 and raw.content == _multipart()
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert f"message-{mail.ids['contract']}.eml" in raw.headers["content-disposition"]
    pdf = mail.api.call("GET", f"/messages/{mail.ids['contract']}/attachments/1", "admin")
    assert pdf.content == PDF and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith('attachment; filename="contract.pdf"')
    page = mail.api.call("GET", f"/messages/{mail.ids['contract']}/attachments/2", "admin")
    # The browser saves it; it never runs as this site.
    assert page.content == PAGE and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["content-security-policy"].startswith("sandbox")
    assert page.headers["content-disposition"].startswith("attachment;")
    eml = mail.api.call("GET", f"/messages/{mail.ids['contract']}/attachments/3", "admin")
    assert b"Subject: Forwarded one" in eml.content and b"Inner body." in eml.content
    missing = mail.api.call("GET", f"/messages/{mail.ids['contract']}/attachments/4", "admin")
    assert missing.status_code == 404


def test_conversations(mail: Mail) -> None:
    listed = mail.get("/conversations", contact_id=mail.contacts["carol"])
    hello = mail.get(f"/messages/{mail.ids['hello']}")["conversation_id"]
    contract = mail.get(f"/messages/{mail.ids['contract']}")["conversation_id"]
    counts = {c["id"]: c["messages"] for c in listed["data"]}
    assert counts == {hello: 2, contract: 1}
    thread = mail.get(f"/conversations/{hello}")
    assert [m["subject"] for m in thread["thread"]] == ["Hello", "Re: Hello"]  # as sent
    paged = mail.get("/conversations", limit=1)
    assert len(paged["data"]) == 1 and paged["next_cursor"]
    assert mail.api.call("GET", "/conversations/999999", "admin").status_code == 404


def test_a_member_sees_only_their_own_mail(mail: Mail) -> None:
    bob = mail.member()
    mine = bob.api("GET", "/messages").json()
    assert sorted(_subjects(mine)) == ["Hello", "Re: Hello", "The contract"]
    ann = mail.ids["ann"]
    for path in (f"/messages/{ann}", f"/messages/{ann}/raw", f"/messages/{ann}/attachments"):
        assert bob.api("GET", path).status_code == 404, path
    ann_conversation = mail.get(f"/messages/{ann}")["conversation_id"]
    assert bob.api("GET", f"/conversations/{ann_conversation}").status_code == 404
    dan = bob.api("GET", "/messages", params={"contact_id": mail.contacts["dan"]}).json()
    assert dan["data"] == []
    assert mail.get("/messages", contact_id=mail.contacts["dan"])["data"][0]["id"] == ann


def test_another_account_finds_none_of_it(mail: Mail) -> None:
    assert mail.get("/messages", "other")["data"] == []
    assert mail.get("/conversations", "other")["data"] == []
    for name, message in mail.ids.items():
        for path in ("", "/raw", "/attachments", "/attachments/1"):
            answer = mail.api.call("GET", f"/messages/{message}{path}", "other")
            assert answer.status_code == 404, (name, path)
    carol = mail.api.call(
        "GET", "/messages", "other", params={"contact_id": mail.contacts["carol"]}
    )
    assert carol.json()["data"] == []
    assert (
        mail.api.call("GET", "/messages", "other", params={"mailbox_id": mail.mailbox}).json()[
            "data"
        ]
        == []
    )


def test_a_contacts_page_walks_the_index_never_scans(db: Database) -> None:
    from tests.gateway.test_db import _plan

    with db.read() as session:
        for reader in (Reader(1), Reader(1, 2)):
            statement = message_page_query(session, reader, MessageFilter(contact_id=5), 900, 51)
            plan = _plan(db, statement)
            if db.dialect == "sqlite":
                assert (
                    "ix_message_contacts_contact_message (contact_id=? AND message_id<?)" in plan
                ), plan
                assert "SCAN message_contacts" not in plan and "SCAN messages" not in plan, plan
                assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order
            else:
                assert "ix_message_contacts_contact_message" in plan, plan
                assert "Seq Scan" not in plan, plan
