"""Messages finished together in one batch (gateway.pipeline.lookups reads what they
look up once for the batch) come out as they would one at a time: a message seen
twice in the batch is one message, a reused Message-ID is flagged on both, a contact
auto-created by one message is the contact of the next, a message that involves no
contact is discarded, and a reply finds its parent from the same batch."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.accounts import get_user
from gateway.config import Config
from gateway.db import Database
from gateway.models import ContactEmail, Keep, Message, Sighting, Source
from gateway.pipeline import Pipeline
from gateway.store import Arrival, MessageStore
from tests.helpers.mail import make_message
from tests.helpers.pipeline import attached, contact, conversation_of, count, set_account


def _accept(db: Database, config: Config, *items: tuple[bytes, Source, Keep, str]) -> list[int]:
    with db.session() as session:
        user_id = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    return [
        store.accept(raw, Arrival(user_id, source, keep, source_key=key)).sighting_id
        for raw, source, keep, key in items
    ]


def _finished_in_one_batch(db: Database, config: Config, count_: int) -> dict[int, int | None]:
    outcomes = Pipeline(db, config).run_pending()
    assert len(outcomes) == count_
    return {o.sighting_id: o.message_id for o in outcomes}


def test_one_batch_gives_what_one_message_at_a_time_gives(
    db: Database, config: Config, account_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    set_account(db, account_id, auto_create_contacts=True)
    carol = contact(db, config, account_id, "carol@client.com")
    shared = make_message(message_id="<shared@client.com>")
    parent = make_message(message_id="<parent@client.com>", subject="Plans")
    items = [
        (shared, Source.DROPBOX, Keep.ALWAYS, "d1"),
        (b"Received: from mx\r\n" + shared, Source.IMAP, Keep.IF_MATCHED, "INBOX/1/1"),
        (make_message(message_id="<dup@x.com>"), Source.IMPORT, Keep.ALWAYS, "i1"),
        (
            make_message(message_id="<dup@x.com>", from_="eve@evil.com", cc="carol@client.com"),
            Source.IMPORT,
            Keep.ALWAYS,
            "i2",
        ),
        # Bob writes to someone new (auto-created), who answers in the same batch.
        (
            make_message(from_="Bob <bob@acme.com>", to="Dan <dan@new.example>"),
            Source.IMAP,
            Keep.IF_MATCHED,
            "Sent/1/1",
        ),
        (
            make_message(from_="dan@new.example", to="bob@acme.com", subject="Re: hi"),
            Source.IMAP,
            Keep.IF_MATCHED,
            "INBOX/1/2",
        ),
        (make_message(from_="stranger@else.example"), Source.IMAP, Keep.IF_MATCHED, "INBOX/1/3"),
        (parent, Source.IMAP, Keep.IF_MATCHED, "INBOX/1/4"),
        (
            make_message(in_reply_to="<parent@client.com>", subject="Re: Plans"),
            Source.IMAP,
            Keep.IF_MATCHED,
            "INBOX/1/5",
        ),
    ]
    ids = _accept(db, config, *items)
    done = _finished_in_one_batch(db, config, len(items))
    assert "finishing one by one" not in caplog.text  # the batch went through whole
    message = [done[i] for i in ids]

    assert message[0] is not None and message[0] == message[1]  # one message, seen twice
    assert message[2] != message[3]
    with db.read() as session:
        for id_ in (message[2], message[3]):
            assert "message_id_reused" in session.get_one(Message, id_).flags
    assert attached(db, message[3] or 0) == {carol: {"cc"}}
    with db.read() as session:
        dans = session.scalars(
            select(ContactEmail.contact_id).where(ContactEmail.address == "dan@new.example")
        ).all()
    assert len(dans) == 1  # created once, by the first message
    assert attached(db, message[5] or 0) == {dans[0]: {"from"}}  # the next one's contact
    assert message[6] is None  # no contact involved: discarded
    assert conversation_of(db, message[8]) == conversation_of(db, message[7])
    assert count(db, Message) == 7
    with db.read() as session:
        states = session.scalars(select(Sighting.state)).all()
    assert sorted(set(states)) == ["discarded", "done"]
