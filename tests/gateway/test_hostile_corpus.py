"""Hostile and broken mail through the whole pipeline: no crash, no wrong link,
raw bytes stored byte-exact (parsing and matching)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.models import Message, MessageContact, RawMessage
from tests.helpers.pipeline import contact, push

CRLF = "\r\n"


def message(*headers: str, body: str = "body") -> bytes:
    return (CRLF.join(headers) + CRLF + CRLF + body).encode("utf-8", "surrogateescape")


HOSTILE = {
    "cve-2023-27043": message("From: carol@client.com(<eve@evil.com>", "To: bob@acme.com"),
    "double-at": message("From: eve@evil.com@client.com", "To: carol@client.com"),
    "encoded-address-in-name": message(
        "From: =?utf-8?b?ZXZlQGV2aWwuY29t?= <carol@client.com>", "To: bob@acme.com"
    ),
    "comment-holds-address": message("From: carol@client.com (eve@evil.com)", "To: bob@acme.com"),
    "quoted-name-holds-address": message('From: "eve@evil.com" <carol@client.com>'),
    "unknown-charset": message(
        "From: carol@client.com",
        "Subject: =?x-unknown?q?caf=E9?=",
        "Content-Type: text/plain; charset=x-unknown",
    ),
    "multipart-without-boundary": message(
        "From: carol@client.com", "Content-Type: multipart/mixed", body="--x\r\nhi\r\n--x--"
    ),
    "nul-in-headers": message("From: carol@client.com\x00eve@evil.com", "To: bob@acme.com"),
    "latin1-8bit-header": b"From: J\xf6rg <carol@client.com>\r\nSubject: caf\xe9\r\n\r\nx",
    "header-injection-in-name": message(
        "From: =?utf-8?q?x=0D=0ABcc=3A_eve=40evil=2Ecom?= <carol@client.com>"
    ),
    "no-separator": b"From: carol@client.com\r\nthis line is not a header\r\n",
    "huge-header": message("From: carol@client.com", "X-Long: " + "a" * 200_000),
    "many-message-ids": message(
        "From: carol@client.com", "References: " + " ".join(f"<r{i}@x>" for i in range(5000))
    ),
    "bad-date": message("From: carol@client.com", "Date: Feb 30 99999 25:61:61 +9999"),
    "only-newlines": b"\n\n\n\n",
    "bare-lf-everywhere": b"From: carol@client.com\nTo: bob@acme.com\n\nbody\n",
    "unicode-line-separator": message("From: carol@client.com\u2028Bcc: eve@evil.com"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_mail_never_crashes_or_links_wrongly(db, config, account_id, name):
    carol = contact(db, config, account_id, "carol@client.com")
    eve = contact(db, config, account_id, "eve@evil.com")
    raw = HOSTILE[name]
    outcome = push(db, config, raw)
    assert outcome.error is None
    with db.session() as session:
        linked = set(session.scalars(select(MessageContact.contact_id)))
        assert eve not in linked
        if outcome.message_id is not None:
            message = session.get_one(Message, outcome.message_id)
            stored = session.get_one(RawMessage, message.raw_message_id)
            assert stored.data == raw  # byte-exact
    # Where the From header itself is garbage no one is linked; elsewhere Carol is.
    garbage_from = {"only-newlines", "nul-in-headers", "unicode-line-separator"}
    assert (carol in linked) != (name in garbage_from)
