"""MessageStore.accept(): raw bytes + a pending Sighting, committed in one transaction.

This runs before any acknowledgement (SMTP 250, HTTP 202, an IMAP checkpoint
advance). The bytes are stored byte-exact and content-addressed by SHA-256, so
the same bytes arriving twice are stored once. Arrivals are idempotent per
(user, source, source_key).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import (
    Keep,
    Message,
    OutboundMessage,
    RawMessage,
    Sighting,
    SightingState,
    Source,
    User,
    table_of,
    utcnow,
)
from gateway.prepared import prepared

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrival:
    """Where a message came from."""

    user_id: int
    source: Source
    keep: Keep
    source_key: str | None = None  # default: the SHA-256 of the bytes
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    auth_results: str | None = None
    quarantined: bool = False  # held until its user approves it
    origin: dict[str, Any] | None = None  # a forward to the user's own dropbox
    account_id: int | None = None  # the user's account, when the caller knows it
    new_key: bool = False  # source_key made up for this arrival: it cannot exist yet


@dataclass(frozen=True)
class Accepted:
    sighting_id: int
    raw_message_id: int
    sha256: str
    new: bool  # False when this exact arrival was already stored


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def accept(self, raw: bytes, arrival: Arrival) -> Accepted:
        """Store `raw` durably; returns only after the commit."""
        return self.accept_many(raw, [arrival])[0]

    def accept_many(self, raw: bytes, arrivals: Sequence[Arrival]) -> list[Accepted]:
        """Store `raw` once with one arrival per recipient, in one committed transaction."""
        for attempt in range(3):
            try:
                with self.db.connection() as connection:
                    return [accept_in(connection, raw, arrival) for arrival in arrivals]
            except IntegrityError:
                # A concurrent writer stored the same bytes or arrival, or a
                # discard removed the raw row we found: look again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


_s = table_of(Sighting).c
_r = table_of(RawMessage).c
_SIGHTING_COLUMNS = (
    "account_id",
    "user_id",
    "raw_message_id",
    "source",
    "source_key",
    "folder",
    "uidvalidity",
    "uid",
    "keep",
    "state",
    "attempts",
    "auth_results",
    "origin",
    "received_at",
)
_FIND_SIGHTING = prepared(
    "find_sighting",
    lambda: select(_s.id, _s.raw_message_id).where(
        _s.user_id == bindparam("b_user"),
        _s.source == bindparam("b_source"),
        _s.source_key == bindparam("b_key"),
    ),
)
_RAW_ID = prepared("raw_id", lambda: select(_r.id).where(_r.sha256 == bindparam("b_sha")))
_ACCOUNT_OF = prepared(
    "account_of", lambda: select(User.account_id).where(User.id == bindparam("b_user"))
)
_INSERT_SIGHTING = prepared(
    "insert_sighting",
    lambda: insert(table_of(Sighting)).returning(_s.id),
    _SIGHTING_COLUMNS,
)
_REVIVE = prepared(
    "revive",
    lambda: (
        update(table_of(Sighting))
        .where(_s.id == bindparam("b_id"))
        .values(raw_message_id=bindparam("b_raw"), state="pending", keep=bindparam("b_keep"))
    ),
)


def _build_insert_raw(dialect: str) -> Any:
    """INSERT the bytes unless stored already, RETURNING the new row's id (none if not)."""
    module: Any = sqlite if dialect == "sqlite" else postgresql
    return (
        module.insert(table_of(RawMessage))
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(_r.id)
    )


_RAW_COLUMNS = ("sha256", "size", "data", "created_at")
_INSERT_RAW = {
    name: prepared(f"insert_raw_{name}", functools.partial(_build_insert_raw, name), _RAW_COLUMNS)
    for name in ("sqlite", "postgresql")
}


def _build_insert_raw_many(dialect: str) -> Any:
    module: Any = sqlite if dialect == "sqlite" else postgresql
    return module.insert(table_of(RawMessage)).on_conflict_do_nothing(index_elements=["sha256"])


_INSERT_RAW_MANY = {
    name: prepared(
        f"insert_raw_many_{name}", functools.partial(_build_insert_raw_many, name), _RAW_COLUMNS
    )
    for name in ("sqlite", "postgresql")
}
_INSERT_SIGHTING_MANY = prepared(
    "insert_sighting_many", lambda: insert(table_of(Sighting)), _SIGHTING_COLUMNS
)


def _one(cursor: Any) -> Any:
    row = cursor.fetchone()
    return None if row is None else row[0]


def accept_in(
    transaction: Session | Connection, raw: bytes, arrival: Arrival, raw_id: int | None = None
) -> Accepted:
    """The body of accept(), for callers that own the transaction (statements
    prepared once: this runs for every message acknowledged). `raw_id`: where these
    bytes are stored already, when the caller knows (two round trips fewer)."""
    connection = transaction.connection() if isinstance(transaction, Session) else transaction
    sha = hashlib.sha256(raw).hexdigest()
    key = arrival.source_key or sha
    source = arrival.source.value
    existing = None
    if not arrival.new_key:
        existing = (
            _FIND_SIGHTING(connection)
            .execute(connection, {"b_user": arrival.user_id, "b_source": source, "b_key": key})
            .fetchone()
        )
    if existing is not None and existing[1] is not None:
        return Accepted(existing[0], existing[1], sha, new=False)
    now = utcnow()
    if raw_id is None:
        raw_id = _one(
            _INSERT_RAW[connection.dialect.name](connection).execute(
                connection, {"sha256": sha, "size": len(raw), "data": raw, "created_at": now}
            )
        )
    if raw_id is None:  # these bytes were stored before
        raw_id = _one(_RAW_ID(connection).execute(connection, {"b_sha": sha}))
    if existing is not None:
        # Seen before and discarded as involving no contact: look again.
        _REVIVE(connection).execute(
            connection, {"b_id": existing[0], "b_raw": raw_id, "b_keep": arrival.keep.value}
        )
        return Accepted(existing[0], raw_id, sha, new=True)
    account_id = _account_of(connection, arrival, {})
    row = _sighting_row(arrival, account_id, raw_id, (arrival.user_id, source, key), now)
    sighting_id = _one(_INSERT_SIGHTING(connection).execute(connection, row))
    return Accepted(int(sighting_id), int(raw_id), sha, new=True)


def store_raw(transaction: Session | Connection, raw: bytes) -> int:
    """The id of `raw` in raw_messages, stored now unless these bytes were already."""
    connection = transaction.connection() if isinstance(transaction, Session) else transaction
    sha = hashlib.sha256(raw).hexdigest()
    raw_id = _one(
        _INSERT_RAW[connection.dialect.name](connection).execute(
            connection, {"sha256": sha, "size": len(raw), "data": raw, "created_at": utcnow()}
        )
    )
    if raw_id is None:
        raw_id = _one(_RAW_ID(connection).execute(connection, {"b_sha": sha}))
    return int(raw_id)


BATCH_CHUNK = 500  # values per IN list of accept_batch_in()


def accept_batch_in(
    transaction: Session | Connection, items: Sequence[tuple[bytes, Arrival]]
) -> list[Accepted]:
    """accept_in() for each of `items`, in the caller's transaction, with the same
    results (a test holds the two equal) in a few statements: one executemany for the
    bytes, one for the sightings and IN lists to read their ids back, instead of three
    statements per message. For the IMAP sync's batches: every statement lets go of
    Python's GIL and has to win it back, which costs far more than the statement when
    other threads are busy. Batches of a few, or with the same arrival twice, go one
    by one."""
    connection = transaction.connection() if isinstance(transaction, Session) else transaction
    shas = [hashlib.sha256(raw).hexdigest() for raw, _ in items]
    keys = [
        (a.user_id, a.source.value, a.source_key or sha)
        for (_, a), sha in zip(items, shas, strict=True)
    ]
    if len(items) < 8 or len(set(keys)) < len(keys) or any(a.new_key for _, a in items):
        return [accept_in(connection, raw, arrival) for raw, arrival in items]
    found = _sightings_of(connection, keys)
    now = utcnow()
    todo = [i for i, key in enumerate(keys) if found.get(key, (0, None))[1] is None]
    raw_ids = _store_raws(connection, {shas[i]: items[i][0] for i in todo}, now)
    out: list[Accepted | None] = [None] * len(items)
    rows: list[dict[str, Any]] = []
    accounts: dict[int, int] = {}
    for i, key in enumerate(keys):
        raw, arrival = items[i]
        existing = found.get(key)
        if existing is not None and existing[1] is not None:
            out[i] = Accepted(existing[0], existing[1], shas[i], new=False)
            continue
        raw_id = raw_ids.get(shas[i])
        if raw_id is None:  # removed meanwhile by a discard: the slow path sorts it out
            out[i] = accept_in(connection, raw, arrival)
            continue
        if existing is not None:  # seen before and discarded: look again
            _REVIVE(connection).execute(
                connection, {"b_id": existing[0], "b_raw": raw_id, "b_keep": arrival.keep.value}
            )
            out[i] = Accepted(existing[0], raw_id, shas[i], new=True)
            continue
        account_id = _account_of(connection, arrival, accounts)
        rows.append(_sighting_row(arrival, account_id, raw_id, key, now))
    if rows:
        _INSERT_SIGHTING_MANY(connection).execute_many(connection, rows)
        created = _sightings_of(
            connection, [(r["user_id"], r["source"], r["source_key"]) for r in rows]
        )
        for i, key in enumerate(keys):
            if out[i] is None:
                sighting_id, stored = created[key]
                assert stored is not None
                out[i] = Accepted(sighting_id, stored, shas[i], new=True)
    return [accepted for accepted in out if accepted is not None]


def _store_raws(connection: Connection, raws: dict[str, bytes], now: datetime) -> dict[str, int]:
    """Insert the bytes not stored yet (one executemany); every one's id by SHA-256."""
    if raws:
        _INSERT_RAW_MANY[connection.dialect.name](connection).execute_many(
            connection,
            [
                {"sha256": sha, "size": len(raw), "data": raw, "created_at": now}
                for sha, raw in raws.items()
            ],
        )
    return _raw_ids(connection, list(raws))


def _account_of(connection: Connection, arrival: Arrival, known: dict[int, int]) -> int:
    """The account of the arrival's user (given, remembered in `known`, or read)."""
    account_id = arrival.account_id or known.get(arrival.user_id)
    if account_id is None:
        account_id = _one(_ACCOUNT_OF(connection).execute(connection, {"b_user": arrival.user_id}))
        if account_id is None:
            raise LookupError(f"no user with id {arrival.user_id}")
        known[arrival.user_id] = account_id
    return int(account_id)


def _sighting_row(
    arrival: Arrival, account_id: int, raw_id: int, key: tuple[int, str, str], now: datetime
) -> dict[str, Any]:
    state = SightingState.QUARANTINED if arrival.quarantined else SightingState.PENDING
    return {
        "account_id": account_id,
        "user_id": arrival.user_id,
        "raw_message_id": raw_id,
        "source": key[1],
        "source_key": key[2],
        "folder": arrival.folder,
        "uidvalidity": arrival.uidvalidity,
        "uid": arrival.uid,
        "keep": arrival.keep.value,
        "state": state.value,
        "attempts": 0,
        "auth_results": arrival.auth_results,
        "origin": arrival.origin,
        "received_at": now,
    }


def _sightings_of(
    connection: Connection, keys: Sequence[tuple[int, str, str]]
) -> dict[tuple[int, str, str], tuple[int, int | None]]:
    """{(user, source, key): (sighting id, raw id or None)} of those that exist."""
    found: dict[tuple[int, str, str], tuple[int, int | None]] = {}
    groups: dict[tuple[int, str], list[str]] = {}
    for user, source, key in keys:
        groups.setdefault((user, source), []).append(key)
    for (user, source), names in groups.items():
        for start in range(0, len(names), BATCH_CHUNK):
            rows = connection.execute(
                select(_s.source_key, _s.id, _s.raw_message_id).where(
                    _s.user_id == user,
                    _s.source == source,
                    _s.source_key.in_(names[start : start + BATCH_CHUNK]),
                )
            )
            for key, sighting_id, raw_id in rows:
                found[(user, source, key)] = (int(sighting_id), raw_id)
    return found


def _raw_ids(connection: Connection, shas: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(shas), BATCH_CHUNK):
        rows = connection.execute(
            select(_r.sha256, _r.id).where(_r.sha256.in_(shas[start : start + BATCH_CHUNK]))
        )
        found.update((sha, int(raw_id)) for sha, raw_id in rows)
    return found


def drop_raw_if_unused(session: Session, raw_id: int | None) -> None:
    """Delete stored bytes that no sighting or message needs any more."""
    if raw_id is None:
        return
    session.execute(
        delete(RawMessage).where(
            RawMessage.id == raw_id,
            ~exists().where(Sighting.raw_message_id == raw_id),
            ~exists().where(Message.raw_message_id == raw_id),
            ~exists().where(OutboundMessage.raw_message_id == raw_id),
        )
    )
