"""The Inbox and the message view over real HTTP: matched mail a conversation a row,
newest first, search and filters, pages that never repeat a conversation; a message
with its contacts, attachments and "Why is this here?"; an HTML body made safe and
framed under a CSP that forbids scripts and remote images; a member sees only their
own mail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from gateway.accounts import get_user, set_password
from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, Source
from gateway.vault import ensure_key_file
from tests.admin.test_messages_api import _multipart
from tests.helpers.browser_session import Person
from tests.helpers.mail import make_message
from tests.helpers.pipeline import contact, push
from tests.helpers.web import running_web

PASSWORD = "a long enough password"
HOSTILE = (
    b"From: Carol <carol@client.com>\r\nTo: bob@acme.com\r\nSubject: Newsletter\r\n"
    b"Date: Wed, 25 Nov 2026 08:00:00 +0000\r\nMessage-ID: <news@client.com>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><script>document.title='ran'</script>"
    b"<style>body{background:url(https://tracker.example/bg.png)}</style></head>"
    b'<body onload="alert(1)"><h1>Big news</h1>'
    b'<img src="https://tracker.example/open.gif?u=bob" width=1 height=1>'
    b'<img src="x" onerror="fetch(\'https://tracker.example/err\')">'
    b'<p style="color:red;background-image:url(https://tracker.example/p.png)">Read on</p>'
    b'<a href="javascript:alert(2)">click</a> <a href="https://client.com/more">more</a>'
    b'<iframe src="https://tracker.example/frame"></iframe><form action="https://x.example">'
    b"<input name=a></form></body></html>\r\n"
)


@dataclass
class Inbox:
    url: str
    ids: dict[str, int]
    contacts: dict[str, int]
    mailbox: int
    people: list[Person] = field(default_factory=list)

    def person(self, email: str) -> Person:
        found = Person(self.url)
        self.people.append(found)
        assert found.sign_in(email, PASSWORD).status_code == 303
        return found


def rows(text: str) -> list[str]:
    """The subjects of the Inbox's rows, in order."""
    return [s.strip() for s in re.findall(r'<span class="subject">([^<]+)', text)]


@pytest.fixture
def inbox(db: Database, config: Config, account_id: int) -> Iterator[Inbox]:
    ensure_key_file(config.secret_key_file)
    carol = contact(db, config, account_id, "carol@client.com", name="Carol")
    dan = contact(db, config, account_id, "dan@client.com", name="Dan")
    with db.session() as session:
        for email in ("bob@acme.com", "ann@acme.com"):
            set_password(session, config, email, PASSWORD)
        get_user(session, config, "ann@acme.com").is_admin = True
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
        "hello": push(db, config, hello, source=Source.IMAP, key=f"imap:{mailbox}:a:1:10"),
        "reply": push(db, config, reply, source=Source.OUTBOUND, key="outbound:7"),
        "contract": push(db, config, _multipart(), source=Source.DROPBOX),
        "stranger": push(db, config, make_message(from_="x@nowhere.example", subject="Unmatched")),
        "ann": push(
            db,
            config,
            make_message(from_="Dan <dan@client.com>", to="ann@acme.com", subject="For Ann"),
            user="ann@acme.com",
        ),
        "news": push(db, config, HOSTILE, source=Source.DROPBOX),
    }
    with running_web(db, config) as url:
        found = Inbox(
            url,
            {k: v.message_id or 0 for k, v in ids.items()},
            {"carol": carol, "dan": dan},
            mailbox,
        )
        try:
            yield found
        finally:
            for person in found.people:
                person.close()


def test_matched_mail_a_conversation_a_row_newest_first(inbox: Inbox) -> None:
    bob = inbox.person("bob@acme.com")
    page = bob.get("/inbox")
    assert page.status_code == 200
    # The Hello conversation once (its newest, the reply, with a count of 2); no
    # unmatched mail; not Ann's.
    assert rows(page.text) == ["Newsletter", "The contract", "Re: Hello"]
    assert 'aria-label="2 messages"' in page.text
    assert 'aria-label="3 attachments"' in page.text  # the contract's
    assert 'aria-label="Sent"' in page.text and 'aria-label="Received"' in page.text
    assert "Here is the contract, Bob." in page.text  # its snippet
    assert '<span class="badge">Carol</span>' in page.text
    ann = inbox.person("ann@acme.com")
    assert "For Ann" in rows(ann.get("/inbox").text)  # an admin: the whole account


def test_search_and_filters(inbox: Inbox) -> None:
    bob = inbox.person("bob@acme.com")
    assert rows(bob.get("/inbox", params={"q": "CONTRACT"}).text) == ["The contract"]
    by_address = bob.get("/inbox", params={"q": "carol@client"}).text
    assert rows(by_address) == ["Newsletter", "The contract", "Re: Hello"]
    assert rows(bob.get("/inbox", params={"q": "100%_"}).text) == []  # LIKE characters
    # A conversation shows at its newest message of those that match.
    assert rows(bob.get("/inbox", params={"direction": "incoming"}).text) == [
        "Newsletter",
        "The contract",
        "Hello",
    ]
    assert rows(bob.get("/inbox", params={"direction": "outgoing"}).text) == ["Re: Hello"]
    mailbox = bob.get("/inbox", params={"mailbox": str(inbox.mailbox)}).text
    assert rows(mailbox) == ["Hello"]
    dropbox = bob.get("/inbox", params={"mailbox": "dropbox"}).text
    assert rows(dropbox) == ["Newsletter", "The contract"]
    nothing = bob.get("/inbox", params={"q": "no such words"})
    assert "No mail matches." in nothing.text
    bad = bob.get("/inbox", params={"mailbox": "99999999999999999999", "direction": "up"})
    assert bad.status_code == 200


def test_pages_never_repeat_a_conversation(db: Database, config: Config, inbox: Inbox) -> None:
    for n in range(30):
        push(
            db,
            config,
            make_message(subject=f"Topic {n}", message_id=f"<topic{n}@client.com>"),
            source=Source.DROPBOX,
        )
    push(
        db,
        config,
        make_message(subject="Re: Topic 29", in_reply_to="<topic29@client.com>"),
        source=Source.DROPBOX,
    )
    bob = inbox.person("bob@acme.com")
    first = bob.get("/inbox").text
    older = re.search(r'<a href="(/inbox\?before=\d+)">Older</a>', first)
    assert older, "no link to older mail"
    second = bob.get(older.group(1).replace("&amp;", "&")).text
    shown = rows(first) + rows(second)
    assert len(rows(first)) == 25
    assert shown[0] == "Re: Topic 29" and "Topic 29" not in shown
    assert len(shown) == len(set(shown)) == 33  # 30 topics, 3 earlier conversations
    assert ">Newest</a>" in second and "Older" not in second


def test_the_message_view(inbox: Inbox) -> None:
    bob = inbox.person("bob@acme.com")
    view = bob.get(f"/inbox/{inbox.ids['contract']}")
    assert view.status_code == 200
    text = view.text
    assert "<h1>The contract</h1>" in text
    assert f'href="/contacts/{inbox.contacts["carol"]}">Carol</a>' in text
    assert "contract.pdf" in text and 'href="/api/v1/messages/' in text
    assert "Why is this here?" in text and "Seen in your BCC dropbox." in text
    assert "<code>contract@client.com</code>" in text
    assert "is on its contacts by carol@client.com in from" in text
    assert "frame-src 'self'" in view.headers["content-security-policy"]
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in text
    # The attachment downloads with the page's own cookie.
    pdf = bob.get(f"/api/v1/messages/{inbox.ids['contract']}/attachments/1")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    plain = bob.get(f"/inbox/{inbox.ids['hello']}").text
    assert '<pre class="mail-text">Hello there.' in plain and "<iframe" not in plain
    assert "Seen in bob@acme.com" in plain
    assert bob.get(f"/inbox/{inbox.ids['stranger']}").status_code == 200  # bob's own


def test_an_html_mail_runs_nothing_and_loads_nothing_until_asked(inbox: Inbox) -> None:
    bob = inbox.person("bob@acme.com")
    news = inbox.ids["news"]
    view = bob.get(f"/inbox/{news}").text
    assert "Show 1 remote image" in view
    body = bob.get(f"/inbox/{news}/body")
    assert body.status_code == 200
    policy = body.headers["content-security-policy"]
    assert "img-src data:;" in policy and "sandbox" in policy and "script" not in policy
    assert body.headers["x-frame-options"] == "SAMEORIGIN"
    html = body.text.lower()
    assert "<h1>big news</h1>" in html and "read on" in html
    for gone in (
        "<script",
        "onload",
        "onerror",
        "tracker.example",
        "javascript:",
        "<iframe",
        "<form",
    ):
        assert gone not in html, gone
    assert '<a href="https://client.com/more" target="_blank" rel="noopener noreferrer">' in html
    shown = bob.get(f"/inbox/{news}/body?images=1")
    assert "img-src data: https: http:" in shown.headers["content-security-policy"]
    assert 'src="https://tracker.example/open.gif?u=bob"' in shown.text
    assert "onerror" not in shown.text and "<script" not in shown.text.lower()


def test_a_member_cannot_open_anothers_message(inbox: Inbox) -> None:
    bob = inbox.person("bob@acme.com")
    anns = inbox.ids["ann"]
    for path in (f"/inbox/{anns}", f"/inbox/{anns}/body", "/inbox/99999", "/inbox/0"):
        answer = bob.get(path)
        assert answer.status_code == 404, path
        assert "For Ann" not in answer.text
    ann = inbox.person("ann@acme.com")
    assert ann.get(f"/inbox/{anns}").status_code == 200
