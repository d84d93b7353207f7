"""Forwarded mail: a user forwards a message they received to their own dropbox,
and it lands on the original conversation's contacts."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from gateway.models import Message
from gateway.pipeline import Pipeline
from inbound.forwarded import find_forwarded, parse_loose_date
from tests.helpers.dropbox import Dropbox
from tests.helpers.mail import make_message
from tests.helpers.pipeline import attached, contact

GMAIL = (
    "FYI, see below.\r\n\r\n"
    "---------- Forwarded message ---------\r\n"
    "From: Carol Client <carol@client.com>\r\n"
    "Date: Mon, Nov 23, 2026 at 10:00\u202fAM\r\n"
    "Subject: Quote for 40 seats\r\n"
    "To: Bob <bob@acme.com>\r\n"
    "Cc: Dan <dan@client.com>\r\n\r\n"
    "Hi Bob, here is the quote.\r\n"
)
OUTLOOK = (
    "Forwarding.\r\n\r\n"
    "-----Original Message-----\r\n"
    "From: Carol Client <carol@client.com>\r\n"
    "Sent: Monday, November 23, 2026 10:00 AM\r\n"
    "To: Bob <bob@acme.com>\r\n"
    "Cc: dan@client.com\r\n"
    "Subject: Quote for 40 seats\r\n\r\n"
    "Hi Bob.\r\n"
)
OUTLOOK_RULE = (
    "See below\r\n\r\n"
    "________________________________\r\n"
    "From: Carol Client <carol@client.com>\r\n"
    "Sent: Monday, November 23, 2026 10:00 AM\r\n"
    "To: Bob <bob@acme.com>\r\n"
    "Cc: dan@client.com\r\n"
    "Subject: Quote for 40 seats\r\n\r\n"
    "Hi Bob.\r\n"
)
APPLE = (
    "Look at this\r\n\r\n"
    "Begin forwarded message:\r\n\r\n"
    "From: Carol Client <carol@client.com>\r\n"
    "Subject: Quote for 40 seats\r\n"
    "Date: 23 November 2026 at 10:00:00 GMT\r\n"
    "To: Bob <bob@acme.com>\r\n"
    "Cc: dan@client.com\r\n\r\n"
    "Hi Bob.\r\n"
)
NESTED = (
    "---------- Forwarded message ---------\r\n"
    "From: Eve <eve@evil.com>\r\n"
    "Subject: Fwd: thing\r\n"
    "To: Bob <bob@acme.com>\r\n\r\n"
    "---------- Forwarded message ---------\r\n"
    "From: Carol Client <carol@client.com>\r\n"
    "To: Bob <bob@acme.com>\r\n\r\n"
    "deeper\r\n"
)


def forward(body: str, to: str, cc: str | None = None) -> bytes:
    return make_message(
        from_="Bob <bob@acme.com>",
        to=to,
        cc=cc,
        subject="Fwd: Quote for 40 seats",
        body=body,
        extra=["MIME-Version: 1.0", 'Content-Type: text/plain; charset="UTF-8"'],
    )


def as_attachment(to: str) -> bytes:
    original = EmailMessage()
    original["From"] = "Carol Client <carol@client.com>"
    original["To"] = "Bob <bob@acme.com>"
    original["Cc"] = "dan@client.com"
    original["Subject"] = "Quote for 40 seats"
    original["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    original["Message-ID"] = "<quote-40@client.com>"
    original.set_content("Hi Bob, the quote.")
    outer = EmailMessage()
    outer["From"] = "Bob <bob@acme.com>"
    outer["To"] = to
    outer["Subject"] = "Fwd: Quote for 40 seats"
    outer["Message-ID"] = "<fwd-1@acme.com>"
    outer.set_content("As an attachment.")
    outer.add_attachment(original)
    return outer.as_bytes(policy=email.policy.SMTP)


@pytest.mark.parametrize(
    ("body", "style"),
    [(GMAIL, "gmail"), (OUTLOOK, "outlook"), (OUTLOOK_RULE, "outlook"), (APPLE, "apple")],
)
def test_inline_styles_are_found(body: str, style: str) -> None:
    origin = find_forwarded(forward(body, "bob@acme.com"))
    assert origin is not None and origin.style == style
    assert origin.headers["from"] == "Carol Client <carol@client.com>"
    assert origin.headers["subject"] == "Quote for 40 seats"
    assert "dan@client.com" in origin.headers["cc"]
    assert origin.headers["date"].startswith("Mon, 23 Nov 2026 10:00:00")


def test_attachment_style_is_found() -> None:
    origin = find_forwarded(as_attachment("bob@acme.com"))
    assert origin is not None and origin.style == "attachment"
    assert origin.headers["message-id"] == "<quote-40@client.com>"


def test_only_the_top_level_forward_counts() -> None:
    origin = find_forwarded(forward(NESTED, "bob@acme.com"))
    assert origin is not None and origin.headers["from"] == "Eve <eve@evil.com>"


def test_loose_dates() -> None:
    assert parse_loose_date("Mon, Nov 23, 2026 at 10:00 AM") is not None
    assert parse_loose_date("no date at all") is None


def deliver(dropbox: Dropbox, raw: bytes, to: list[str]) -> None:
    with dropbox.client() as client:
        assert client.sendmail("bob@acme.com", to, raw) == {}


@pytest.mark.parametrize("body", [GMAIL, OUTLOOK, APPLE])
def test_forward_to_own_dropbox_attaches_to_the_original_contacts(dropbox, db, config, body):
    carol = contact(db, config, 1, "carol@client.com")
    dan = contact(db, config, 1, "dan@client.com")
    box = dropbox.address("bob@acme.com")
    deliver(dropbox, forward(body, to=box), [box])
    [outcome] = Pipeline(db, config).run_pending()
    assert attached(db, outcome.message_id or 0) == {carol: {"from"}, dan: {"cc"}}
    with db.session() as session:
        message = session.get_one(Message, outcome.message_id)
        assert message.direction == "incoming"
        assert message.subject == "Quote for 40 seats"
        assert "forwarded" in message.flags


def test_forward_as_attachment_dedupes_with_the_original(dropbox, db, config):
    carol = contact(db, config, 1, "carol@client.com")
    box = dropbox.address("bob@acme.com")
    deliver(dropbox, as_attachment("bob@acme.com"), [box])
    [outcome] = Pipeline(db, config).run_pending()
    assert carol in attached(db, outcome.message_id or 0)
    with db.session() as session:
        assert session.scalars(select(Message.message_id_header)).one() == "quote-40@client.com"


def test_forward_to_someone_else_with_dropbox_in_bcc_counts_as_sent(dropbox, db, config):
    carol = contact(db, config, 1, "carol@client.com")
    dan = contact(db, config, 1, "dan@client.com")
    box = dropbox.address("bob@acme.com")
    deliver(dropbox, forward(GMAIL, to="Dan <dan@client.com>"), [box])
    [outcome] = Pipeline(db, config).run_pending()
    assert attached(db, outcome.message_id or 0) == {dan: {"to"}}
    assert carol not in attached(db, outcome.message_id or 0)
    with db.session() as session:
        assert session.get_one(Message, outcome.message_id).direction == "outgoing"
