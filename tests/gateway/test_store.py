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
from tests.helpers.mail import make_message


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


def test_a_batch_is_accepted_as_one_by_one(db: Database, config: Config, account_id: int) -> None:
    """accept_batch_in() (the IMAP sync's batches) gives what accept_in() gives one
    message at a time: arrivals stored before, discarded ones revived, bytes stored
    before under another arrival, the same bytes twice in the batch, quarantine."""
    from sqlalchemy import select

    from gateway.store import accept_batch_in

    with db.session() as session:
        users = [get_user(session, config, e).id for e in ("bob@acme.com", "ann@acme.com")]

    def arrival(user: int, key: str, **extra: object) -> Arrival:
        return Arrival(user, Source.IMAP, Keep.IF_MATCHED, source_key=key, **extra)  # type: ignore[arg-type]

    mail = {s: make_message(subject=s) for s in ["k1", "k2", "shared", "twice"]}
    mail |= {f"n{n}": make_message(subject=f"n{n}") for n in range(8)}
    shared = mail["shared"]
    for user in users:  # the same history for both users
        with db.session() as session:
            accept_in(session, mail["k1"], arrival(user, "k1"))
            discarded = accept_in(session, mail["k2"], arrival(user, "k2"))
            accept_in(session, shared, arrival(user, "old"))
            row = session.get_one(Sighting, discarded.sighting_id)
            row.raw_message_id, row.state = None, "discarded"

    def batch(user: int) -> list[tuple[bytes, Arrival]]:
        twice = mail["twice"]
        items = [
            (mail["k1"], arrival(user, "k1")),
            (mail["k2"], arrival(user, "k2", folder="INBOX", uid=2)),
            (shared, arrival(user, "new-for-shared")),
            (twice, arrival(user, "twice-a")),
            (twice, arrival(user, "twice-b", quarantined=True)),
        ]
        items += [
            (mail[f"n{n}"], arrival(user, f"n{n}", folder="INBOX", uid=10 + n)) for n in range(8)
        ]
        return items

    with db.session() as session:
        batched = accept_batch_in(session, batch(users[0]))
    with db.session() as session:
        single = [accept_in(session, raw, a) for raw, a in batch(users[1])]

    assert [(a.new, a.sha256, a.raw_message_id) for a in batched] == [
        (a.new, a.sha256, a.raw_message_id) for a in single
    ]
    assert [a.new for a in batched][:3] == [False, True, True]

    def stored(user: int) -> list[tuple[object, ...]]:
        with db.read() as session:
            rows = session.scalars(
                select(Sighting).where(Sighting.user_id == user).order_by(Sighting.source_key)
            ).all()
            return [
                (r.source_key, r.state, r.keep, r.raw_message_id, r.folder, r.uid, r.account_id)
                for r in rows
            ]

    assert stored(users[0]) == stored(users[1])
    assert [s[1] for s in stored(users[0]) if s[0] == "twice-b"] == ["quarantined"]
