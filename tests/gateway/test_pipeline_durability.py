"""The pipeline keeps what it must and survives what it must: scanned mail that names
no contact is dropped, pushed mail is kept and attaches later, and a crash or a
failing message never leaves anything half done."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.models import (
    Event,
    Keep,
    Message,
    MessageAddress,
    MessageContact,
    RawMessage,
    Sighting,
    Source,
)
from tests.helpers.mail import make_message
from tests.helpers.pipeline import attached, contact, conversation_of, count, push, set_account


def test_scanned_mail_with_no_contact_is_not_kept(db, config, account_id) -> None:
    raw = make_message(from_="news@shop.com", to="bob@acme.com")
    outcome = push(db, config, raw, source=Source.IMAP, keep=Keep.IF_MATCHED, key="INBOX/1/1")
    assert outcome.state == "discarded" and outcome.message_id is None
    assert count(db, Message) == 0
    assert count(db, RawMessage) == 0


def test_pushed_mail_is_kept_and_attaches_when_the_contact_appears(db, config, account_id) -> None:
    outcome = push(db, config, make_message(from_="lead@prospect.com"), source=Source.DROPBOX)
    assert outcome.created and outcome.contact_ids == []
    lead = contact(db, config, account_id, "Lead <LEAD@prospect.com>")
    assert attached(db, outcome.message_id or 0) == {lead: {"from"}}
    with db.session() as session:
        kinds = session.scalars(select(Event.kind)).all()
    assert "message.attached" in kinds


def test_removing_a_contact_keeps_its_mail(db, config, account_id) -> None:
    from gateway.contacts import remove_contact

    carol = contact(db, config, account_id, "carol@client.com")
    outcome = push(db, config, make_message())
    with db.session() as session:
        remove_contact(session, account_id, "carol@client.com", "lower")
    assert count(db, Message) == 1
    assert carol not in attached(db, outcome.message_id or 0)


def test_resume_after_crash_between_store_and_attach(db, config, account_id) -> None:
    from gateway.accounts import get_user
    from gateway.pipeline import Pipeline
    from gateway.store import Arrival, MessageStore

    carol = contact(db, config, account_id, "carol@client.com")
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    ids = [
        store.accept(make_message(), Arrival(bob, Source.DROPBOX, Keep.ALWAYS)).sighting_id
        for _ in range(3)
    ]
    # The process died here. A new pipeline finds and finishes the work.
    outcomes = Pipeline(db, config).run_pending()
    assert sorted(o.sighting_id for o in outcomes) == sorted(ids)
    assert count(db, Message) == 3
    assert Pipeline(db, config).run_pending() == []
    with db.session() as session:
        assert set(session.scalars(select(MessageContact.contact_id))) == {carol}


def test_crash_in_the_middle_of_processing_leaves_nothing_half_done(
    db, config, account_id, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.accounts import get_user
    from gateway.pipeline import Pipeline
    from gateway.pipeline import creation as pipeline_module
    from gateway.store import Arrival, MessageStore

    contact(db, config, account_id, "carol@client.com")
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    sighting = (
        MessageStore(db)
        .accept(make_message(), Arrival(bob, Source.DROPBOX, Keep.ALWAYS))
        .sighting_id
    )

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(pipeline_module, "record_references", crash)
    [failed] = Pipeline(db, config).run_pending()
    assert failed.error is not None and "power cut" in failed.error
    assert count(db, Message) == 0 and count(db, MessageAddress) == 0
    monkeypatch.undo()
    [done] = Pipeline(db, config).run_pending()
    assert done.sighting_id == sighting and done.created
    assert count(db, Message) == 1
    with db.session() as session:
        assert session.get_one(Sighting, sighting).state == "done"


def test_a_message_that_keeps_failing_is_parked(db, config, account_id, monkeypatch) -> None:
    from gateway.pipeline import MAX_ATTEMPTS, Pipeline
    from gateway.pipeline import creation as pipeline_module

    monkeypatch.setattr(pipeline_module, "record_references", lambda *a, **k: 1 / 0)
    from gateway.accounts import get_user
    from gateway.store import Arrival, MessageStore

    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    MessageStore(db).accept(make_message(), Arrival(bob, Source.DROPBOX, Keep.ALWAYS))
    pipeline = Pipeline(db, config)
    for _ in range(MAX_ATTEMPTS):
        pipeline.run_pending()
    assert pipeline.run_pending() == []
    with db.session() as session:
        assert session.scalars(select(Sighting.state)).all() == ["failed"]


def test_one_batch_sees_its_own_earlier_messages(db, config, account_id) -> None:
    """Rows written together at the end of a batch are still seen by later messages
    of the same batch: the subject fallback and auto-create read them."""
    from gateway.accounts import get_user
    from gateway.pipeline import Pipeline
    from gateway.store import Arrival, MessageStore

    set_account(db, account_id, auto_create_contacts=True)
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com").id
    store = MessageStore(db)
    raws = [
        make_message(
            from_="bob@acme.com", to="new@client.com", subject="Plan B", message_id="<b1@x>"
        ),
        make_message(
            from_="new@client.com", to="bob@acme.com", subject="Re: Plan B", message_id="<b2@x>"
        ),
        make_message(from_="bob@acme.com", to="new@client.com", cc="other@client.com", subject="x"),
    ]
    for raw in raws:
        store.accept(raw, Arrival(bob, Source.IMPORT, Keep.ALWAYS))
    outcomes = Pipeline(db, config).run_pending()
    assert len(outcomes) == 3 and all(o.created for o in outcomes)
    first, reply, third = outcomes
    assert conversation_of(db, first.message_id) == conversation_of(db, reply.message_id)
    assert len(first.auto_created) == 1 and third.auto_created  # other@ is new, new@ is not
    assert attached(db, reply.message_id or 0) == {first.auto_created[0]: {"from"}}
    with db.session() as session:
        kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == [
        "contact.created",
        "conversation.created",
        "message.created",
        "message.created",  # the reply joins the first's conversation
        "contact.created",
        "conversation.created",
        "message.created",
    ]
