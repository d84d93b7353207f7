"""The pipeline end to end: raw bytes in, messages on the right contacts out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import (
    Contact,
    ContactEmail,
    Event,
    Keep,
    Message,
    MessageAddress,
    RawMessage,
    Sighting,
    Source,
)
from tests.helpers.mail import make_message
from tests.helpers.pipeline import attached, contact, conversation_of, count, push, set_account

# --- matching ----------------------------------------------------------------------


def test_incoming_mail_attaches_to_its_contacts(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    dan = contact(db, config, account_id, "dan@client.com")
    outcome = push(db, config, make_message(cc="Dan <DAN@Client.COM>"))
    assert outcome.created and outcome.message_id is not None
    assert attached(db, outcome.message_id) == {carol: {"from"}, dan: {"cc"}}
    with db.session() as session:
        message = session.get_one(Message, outcome.message_id)
        assert message.direction == "incoming"
        assert message.subject == "Hello"


def test_outgoing_from_a_user_alias(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    raw = make_message(from_="Bob <bob@acme.org>", to="carol@client.com", cc="ann@acme.com")
    outcome = push(db, config, raw)
    assert outcome.message_id is not None
    assert attached(db, outcome.message_id) == {carol: {"to"}}
    with db.session() as session:
        assert session.get_one(Message, outcome.message_id).direction == "outgoing"


def test_encoded_word_hiding_an_address_in_a_display_name(db, config, account_id) -> None:
    eve = contact(db, config, account_id, "eve@evil.com")
    carol = contact(db, config, account_id, "carol@client.com")
    raw = make_message(
        to="=?utf-8?q?eve=40evil=2Ecom?= <bob@acme.com>", cc='"eve@evil.com" <x@y.com>'
    )
    outcome = push(db, config, raw)
    assert outcome.message_id is not None
    assert eve not in attached(db, outcome.message_id)
    assert carol in attached(db, outcome.message_id)


def test_undisclosed_recipients_group(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    outcome = push(db, config, make_message(to="undisclosed-recipients:;"))
    assert outcome.message_id is not None
    assert attached(db, outcome.message_id) == {carol: {"from"}}


def test_comments_and_quoted_local_parts(db, config, account_id) -> None:
    quoted = contact(db, config, account_id, '"sales@hq"@client.com')
    carol = contact(db, config, account_id, "carol@client.com")
    eve = contact(db, config, account_id, "eve@evil.com")
    raw = make_message(
        from_="carol@client.com (eve@evil.com)",
        to='"sales@hq"@client.com, bob@acme.com',
    )
    outcome = push(db, config, raw)
    assert outcome.message_id is not None
    assert attached(db, outcome.message_id) == {carol: {"from"}, quoted: {"to"}}
    assert eve not in attached(db, outcome.message_id)


def test_idn_domains_match_in_every_spelling(db, config, account_id) -> None:
    jorg = contact(db, config, account_id, "j\u00f6rg@b\u00fccher.de")
    utf8 = (
        "From: J\u00f6rg <J\u00f6rg@B\u00fccher.DE>\r\nTo: bob@acme.com\r\n"
        "Subject: x\r\nMessage-ID: <u1@x>\r\n\r\nx"
    )
    alabel = make_message(from_="j\u00f6rg@xn--bcher-kva.de", message_id="<u2@x>")
    for raw in (utf8.encode("utf-8"), alabel):
        outcome = push(db, config, raw)
        assert outcome.message_id is not None
        assert attached(db, outcome.message_id) == {jorg: {"from"}}


def test_a_thousand_recipients(db, config, account_id) -> None:
    ids = [contact(db, config, account_id, f"c{i}@client.com") for i in (7, 500, 999)]
    to = ", ".join(f"Person {i} <c{i}@client.com>" for i in range(1000))
    outcome = push(db, config, make_message(from_="bob@acme.com", to=to))
    assert outcome.message_id is not None
    assert set(attached(db, outcome.message_id)) == set(ids)
    assert count(db, MessageAddress) == 1001


def test_two_from_headers_kept_flagged_and_never_simply_from(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    raw = make_message(from_=["carol@client.com", "eve@evil.com"])
    outcome = push(db, config, raw, source=Source.IMAP, keep=Keep.IF_MATCHED)
    assert outcome.message_id is not None
    assert "multiple_from" in outcome.flags
    assert attached(db, outcome.message_id) == {carol: {"disputed_from"}}
    with db.session() as session:
        message = session.get_one(Message, outcome.message_id)
        assert [a["email"] for a in message.from_addresses] == ["carol@client.com", "eve@evil.com"]
        assert message.direction == "incoming"


def test_missing_message_id(db, config, account_id) -> None:
    contact(db, config, account_id, "carol@client.com")
    raw = make_message(message_id=None)
    first = push(db, config, raw, source=Source.DROPBOX, key="smtp-1")
    again = push(db, config, b"Received: by mx\r\n" + raw, source=Source.IMAP, key="INBOX/1/5")
    assert first.created and not again.created
    assert first.message_id == again.message_id
    assert count(db, Message) == 1


# --- one message, one record ------------------------------------------------------------


def test_same_message_from_several_sources_is_one_message(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    raw = make_message(message_id="<shared@client.com>", to="bob@acme.com", cc="ann@acme.com")
    dropbox = push(db, config, raw, source=Source.DROPBOX, key="smtp-9")
    imap_copy = b"Received: from mx by imap\r\nDKIM-Signature: v=1\r\n" + raw
    imap = push(db, config, imap_copy, source=Source.IMAP, keep=Keep.IF_MATCHED, key="INBOX/7/1")
    other_user = push(db, config, imap_copy, user="ann@acme.com", source=Source.IMAP, key="I/1/1")
    assert dropbox.created and not imap.created and not other_user.created
    assert dropbox.message_id == imap.message_id == other_user.message_id
    assert count(db, Message) == 1
    assert count(db, Sighting) == 3
    assert count(db, RawMessage) == 2  # two distinct byte strings, each stored once
    assert attached(db, dropbox.message_id or 0) == {carol: {"from"}}
    with db.session() as session:
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds.count("message.created") == 1 and kinds.count("message.sighted") == 2


def test_same_arrival_twice_is_idempotent(db, config, account_id) -> None:
    contact(db, config, account_id, "carol@client.com")
    raw = make_message()
    push(db, config, raw)
    again = push(db, config, raw)
    assert count(db, Sighting) == 1 and count(db, Message) == 1
    assert not again.created


def test_reused_message_id_cannot_hide_a_message(db, config, account_id) -> None:
    carol = contact(db, config, account_id, "carol@client.com")
    real = push(db, config, make_message(message_id="<dup@client.com>"))
    forged = push(
        db,
        config,
        make_message(message_id="<dup@client.com>", from_="eve@evil.com", cc="carol@client.com"),
    )
    assert real.created and forged.created
    assert real.message_id != forged.message_id
    assert count(db, Message) == 2
    with db.session() as session:
        for message in session.scalars(select(Message)):
            assert "message_id_reused" in message.flags
    assert attached(db, forged.message_id or 0) == {carol: {"cc"}}


# --- threading ---------------------------------------------------------------------


def test_replies_thread_together(db, config, account_id) -> None:
    contact(db, config, account_id, "carol@client.com")
    first = push(db, config, make_message(message_id="<t1@x>"))
    reply = push(
        db,
        config,
        make_message(
            from_="bob@acme.com",
            to="carol@client.com",
            subject="Re: Hello",
            message_id="<t2@x>",
            in_reply_to="<t1@x>",
            references="<t1@x>",
        ),
    )
    third = push(
        db,
        config,
        make_message(subject="RE: Hello", message_id="<t3@x>", references="<t1@x> <t2@x>"),
    )
    unrelated = push(db, config, make_message(subject="Other", message_id="<t4@x>"))
    c = conversation_of(db, first.message_id)
    assert c is not None
    assert conversation_of(db, reply.message_id) == c == conversation_of(db, third.message_id)
    assert conversation_of(db, unrelated.message_id) != c


@pytest.mark.parametrize("position", [0, 63, 64, 150, 239])
def test_a_long_references_chain_finds_its_parent_wherever_it_stands(
    db, config, account_id, position
) -> None:
    """Up to 200 references are looked up in one statement padded to a prepared
    size; the known parent is found at any position, the first 40 dropped."""
    contact(db, config, account_id, "carol@client.com")
    parent = push(db, config, make_message(subject="Plan", message_id="<known@x>"))
    refs = [f"<r{i}@x>" for i in range(240)]
    refs[position] = "<known@x>"
    reply = push(
        db,
        config,
        make_message(subject="Re: Other", message_id="<long@x>", references=" ".join(refs)),
    )
    joined = conversation_of(db, reply.message_id) == conversation_of(db, parent.message_id)
    assert joined == (position >= 40)  # MAX_REFS keeps the newest 200


def test_reply_before_parent_and_merging(db, config, account_id) -> None:
    contact(db, config, account_id, "carol@client.com")
    child = push(
        db, config, make_message(subject="Re: Plan", message_id="<c@x>", in_reply_to="<p@x>")
    )
    other = push(db, config, make_message(subject="Side", message_id="<s@x>"))
    parent = push(db, config, make_message(subject="Plan", message_id="<p@x>"))
    assert conversation_of(db, child.message_id) == conversation_of(db, parent.message_id)
    joiner = push(
        db, config, make_message(subject="Re: both", message_id="<j@x>", references="<p@x> <s@x>")
    )
    ids = {conversation_of(db, m.message_id) for m in (child, other, parent, joiner)}
    assert len(ids) == 1


def test_subject_is_a_last_resort_only(db, config, account_id) -> None:
    contact(db, config, account_id, "carol@client.com")
    contact(db, config, account_id, "zed@elsewhere.com")
    first = push(db, config, make_message(subject="Quote 42", message_id="<q1@x>"))
    reply_no_refs = push(
        db,
        config,
        make_message(
            from_="bob@acme.com", to="carol@client.com", subject="Re: Quote 42", message_id="<q2@x>"
        ),
    )
    same_subject_new_thread = push(
        db, config, make_message(subject="Quote 42", message_id="<q3@x>")
    )
    stranger = push(
        db,
        config,
        make_message(
            from_="zed@elsewhere.com",
            subject="Re: Quote 42",
            message_id="<q4@x>",
            to="ann@acme.com",
        ),
    )
    c = conversation_of(db, first.message_id)
    assert conversation_of(db, reply_no_refs.message_id) == c
    assert conversation_of(db, same_subject_new_thread.message_id) != c
    assert conversation_of(db, stranger.message_id) != c


# --- auto-create --------------------------------------------------------------------


def contacts_by_email(db: Database) -> dict[str, Contact]:
    with db.session() as session:
        rows = session.execute(select(ContactEmail.address, Contact).join(Contact))
        return {address: c for address, c in rows}


def test_auto_create_off_by_default(db, config, account_id) -> None:
    outcome = push(db, config, make_message(from_="bob@acme.com", to="new@client.com"))
    assert outcome.created and outcome.auto_created == []
    assert count(db, Contact) == 0


def test_auto_create_new_recipients_with_exclusions(db, config, account_id) -> None:
    set_account(db, account_id, auto_create_contacts=True, blocked_domains=["blocked.example"])
    dropbox = f"x@{config.dropbox.domain}"
    raw = make_message(
        from_="stranger@sender.com",
        to=f"Bob <bob@acme.com>, New One <new1@client.com>, noreply@shop.com, {dropbox}",
        cc="MAILER-DAEMON@mx.net, postmaster@x.org, no-reply+x@y.com, a@blocked.example, "
        "b@sub.blocked.example, ann@acme.com",
        bcc="new2@client.com",
    )
    outcome = push(db, config, raw, source=Source.IMAP, keep=Keep.IF_MATCHED)
    assert outcome.created
    found = contacts_by_email(db)
    assert set(found) == {"new1@client.com", "new2@client.com"}
    assert found["new1@client.com"].name == "New One"
    assert found["new1@client.com"].source == "auto"
    assert found["new1@client.com"].source_message_id == outcome.message_id
    assert set(attached(db, outcome.message_id or 0)) == set(outcome.auto_created)
    # The sender is not auto-created: only To/Cc/Bcc are.
    assert "stranger@sender.com" not in found


def test_auto_create_is_capped_per_message(db, config, account_id) -> None:
    set_account(db, account_id, auto_create_contacts=True)
    to = ", ".join(f"p{i}@client.com" for i in range(50))
    outcome = push(db, config, make_message(from_="bob@acme.com", to=to))
    assert len(outcome.auto_created) == config.contacts.auto_create_max_per_message
    assert count(db, Contact) == config.contacts.auto_create_max_per_message


# --- intelligent mapping --------------------------------------------------------------


# --- durability ---------------------------------------------------------------------
