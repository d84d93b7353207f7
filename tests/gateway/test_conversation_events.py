"""Event conversation.created: once per new thread, before the message.received of
its first message; a reply joins the thread and writes none."""

from __future__ import annotations

from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import Event
from tests.helpers.mail import make_message
from tests.helpers.pipeline import contact, push


def test_a_new_thread_writes_conversation_created_once(
    db: Database, config: Config, account_id: int
) -> None:
    carol = contact(db, config, account_id, "carol@client.com", name="Carol")
    first = push(db, config, make_message(subject="Plans", message_id="<p1@client.com>"))
    reply = make_message(
        from_="bob@acme.com",
        to="carol@client.com",
        subject="Re: Plans",
        message_id="<p2@acme.com>",
        in_reply_to="<p1@client.com>",
    )
    second = push(db, config, reply)
    other = push(db, config, make_message(subject="Another", message_id="<p3@client.com>"))
    with db.read() as session:
        rows = session.scalars(select(Event).order_by(Event.id)).all()
    created = [e for e in rows if e.kind == "conversation.created"]
    assert [e.payload["message_id"] for e in created] == [first.message_id, other.message_id]
    assert created[0].payload["subject"] == "Plans"
    assert created[0].payload["contact_ids"] == [carol]
    kinds = [(e.kind, e.payload.get("message_id")) for e in rows]
    assert kinds.index(("conversation.created", first.message_id)) < kinds.index(
        ("message.created", first.message_id)
    )
    assert ("conversation.created", second.message_id) not in kinds
