"""MessageStore: what it writes reads back exactly (its statements run on the
DB-API cursor, with the column types' own conversions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.accounts import get_user
from gateway.config import Config
from gateway.db import Database
from gateway.models import Keep, RawMessage, Sighting, Source
from gateway.store import Arrival, MessageStore, accept_in
from tests.mail import make_message


def test_an_arrival_reads_back_as_stored(db: Database, config: Config, account_id: int) -> None:
    with db.session() as session:
        bob = get_user(session, config, "bob@acme.com")
        bob_id = bob.id
    raw = make_message(body="caf\xe9 \u2603\r\n").replace(b"\n", b"\r\n").replace(b"\r\r", b"\r")
    origin = {
        "style": "gmail",
        "headers": {"from": "Carol <carol@client.com>", "subject": "\u2603"},
    }
    before = datetime.now(UTC)
    accepted = MessageStore(db).accept(
        raw,
        Arrival(
            bob_id,
            Source.DROPBOX,
            Keep.ALWAYS,
            source_key="smtp:abc",
            auth_results="gw.test; spf=pass",
            quarantined=True,
            origin=origin,
        ),
    )
    with db.session() as session:
        sighting = session.get_one(Sighting, accepted.sighting_id)
        stored = session.get_one(RawMessage, accepted.raw_message_id)
        assert stored.data == raw and stored.size == len(raw)
        assert (sighting.account_id, sighting.user_id) == (account_id, bob_id)
        assert (sighting.source, sighting.source_key, sighting.keep) == (
            "dropbox",
            "smtp:abc",
            "always",
        )
        assert sighting.state == "quarantined" and sighting.attempts == 0
        assert sighting.auth_results == "gw.test; spf=pass"
        assert sighting.origin == origin
        assert sighting.received_at.tzinfo is not None
        assert before - timedelta(seconds=1) <= sighting.received_at <= datetime.now(UTC)


def test_the_same_arrival_twice_is_stored_once(
    db: Database, config: Config, account_id: int
) -> None:
    with db.session() as session:
        bob_id = get_user(session, config, "bob@acme.com").id
    store, raw = MessageStore(db), make_message()
    first = store.accept(raw, Arrival(bob_id, Source.DROPBOX, Keep.ALWAYS))
    again = store.accept(raw, Arrival(bob_id, Source.DROPBOX, Keep.ALWAYS))
    assert again.new is False and again.sighting_id == first.sighting_id


def test_database_errors_come_as_sqlalchemy_errors(
    db: Database, config: Config, account_id: int
) -> None:
    """Callers map them to SMTP replies (452/451) and retry on IntegrityError."""
    with db.session() as session:
        bob_id = get_user(session, config, "bob@acme.com").id
    arrival = Arrival(bob_id, Source.DROPBOX, Keep.ALWAYS, source_key="k", new_key=True)
    with pytest.raises(IntegrityError), db.connection() as connection:
        accept_in(connection, make_message(), arrival)
        accept_in(connection, make_message(body="other\r\n"), arrival)  # same key: unique
