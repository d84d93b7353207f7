"""The message pipeline: a pending Sighting becomes a Message on the right contacts.

    Sighting(pending) --parse--> ParsedMessage --identity--> known? --yes--> sighting done
                                                               |no
           match contacts (users and dropbox addresses never) -+- auto-create (if enabled)
                                                               |
             nothing matched and scanned (keep=if_matched)? --yes--> discarded, raw deleted
                                                               |no
         thread --> Message + addresses --> attach --> event --> sighting done

A batch of sightings is finished in one transaction, so every step is redone
from database state after a crash: a sighting is either still pending (and
done again from the start) or done, never half done. If one message of a
batch fails, the batch is redone one message per savepoint, and the failing
one is retried on later runs until MAX_ATTEMPTS park it as failed. Workers
claim sightings with FOR UPDATE SKIP LOCKED on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, union_all, update
from sqlalchemy.orm import Session

from gateway import events
from gateway.addresses import Address
from gateway.config import Config
from gateway.contacts import create_contact
from gateway.conversations import find_conversation, may_thread_by_subject, record_references
from gateway.db import Database, insert_ignore
from gateway.directory import AccountDirectory
from gateway.matching import match_contacts
from gateway.models import (
    Direction,
    Event,
    Keep,
    Message,
    MessageAddress,
    MessageContact,
    RawMessage,
    Role,
    Sighting,
    SightingState,
    table_of,
    utcnow,
)
from gateway.parsing import ParsedMessage, parse, parse_origin
from gateway.prepared import prepared
from gateway.store import drop_raw_if_unused

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
_ROLE_OF_HEADER = {
    "from": Role.FROM,
    "sender": Role.SENDER,
    "reply-to": Role.REPLY_TO,
    "to": Role.TO,
    "cc": Role.CC,
    "bcc": Role.BCC,
}
_AUTO_CREATE_ROLES = (Role.TO, Role.CC, Role.BCC)


@dataclass(frozen=True)
class Work:
    """A pending sighting with its raw bytes."""

    sighting_id: int
    account_id: int
    user_id: int
    source: str
    keep: str
    raw_message_id: int | None
    data: bytes | None
    origin: dict[str, Any] | None = None
    parsed: ParsedMessage | None = None  # parsed ahead, outside the write transaction


@dataclass
class Outcome:
    sighting_id: int
    state: str
    message_id: int | None = None
    created: bool = False
    contact_ids: list[int] = field(default_factory=list)
    auto_created: list[int] = field(default_factory=list)
    flags: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Writes:
    """Rows of a batch written together (executemany) just before it commits.

    Flushed early whenever a step reads them back: the subject fallback of
    threading (message_addresses) and auto-create (events stay in order).
    """

    addresses: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    done: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, session: Session) -> None:
        connection = session.connection()
        if self.addresses:
            connection.execute(_INSERT_ADDRESSES, self.addresses)
        insert_ignore(
            session, table_of(MessageContact), self.links, ["message_id", "contact_id", "role"]
        )
        if self.events:
            connection.execute(_INSERT_EVENT, self.events)
        if self.done:
            connection.execute(_DONE, self.done)
        self.clear()

    def clear(self) -> None:
        self.addresses, self.links, self.events, self.done = [], [], [], []

    def event(self, account_id: int, kind: str, **payload: Any) -> None:
        self.events.append(
            {"account_id": account_id, "kind": kind, "payload": payload, "created_at": utcnow()}
        )


class Pipeline:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.case = config.addresses.local_part_case
        self.writes = Writes()

    def run_pending(self, limit: int | None = None) -> list[Outcome]:
        """Finish pending sightings in batches until none is left (or `limit` done).

        Each sighting is tried at most once per call: one that fails stays
        pending for the next call, until MAX_ATTEMPTS park it as failed.
        """
        outcomes: list[Outcome] = []
        after = 0
        while limit is None or len(outcomes) < limit:
            size = self.config.pipeline.batch_size
            if limit is not None:
                size = min(size, limit - len(outcomes))
            # Read and parse outside the write transaction: on SQLite the write
            # lock is shared with the SMTP servers storing new mail.
            with self.db.read() as reading:
                candidates = _claim_after(reading, after, size)
            candidates = [self._parsed_ahead(w) for w in candidates]
            if candidates:
                with self.db.session() as session:
                    outcomes += self._finish(session, _still_pending(session, candidates))
            if len(candidates) < size:
                break  # none left when looked; later arrivals wake the worker again
            after = candidates[-1].sighting_id
        return outcomes

    def process(self, sighting_ids: Sequence[int]) -> list[Outcome]:
        """Finish the given sightings (those still pending) in one transaction."""
        with self.db.session() as session:
            return self._finish(session, _claim(session, sighting_ids))

    def _finish(self, session: Session, works: Sequence[Work]) -> list[Outcome]:
        if not works:
            return []
        directories: dict[int, AccountDirectory] = {}
        for work in works:
            if work.account_id not in directories:
                directories[work.account_id] = AccountDirectory.load_by_id(
                    session, work.account_id, self.config
                )
        try:
            with session.begin_nested():
                done = [self._steps(session, w, directories[w.account_id]) for w in works]
                self.writes.flush(session)
                return done
        except Exception as exc:
            self.writes.clear()
            if len(works) == 1:
                return [self._failed(session, works[0], exc)]
            log.warning("pipeline: a batch of %s failed; finishing one by one", len(works))
        outcomes = []
        for work in works:
            try:
                with session.begin_nested():
                    outcomes.append(self._steps(session, work, directories[work.account_id]))
                    self.writes.flush(session)
            except Exception as exc:
                self.writes.clear()
                outcomes.append(self._failed(session, work, exc))
        return outcomes

    def _failed(self, session: Session, work: Work, exc: Exception) -> Outcome:
        """Record a failed attempt (called inside the `except` block)."""
        log.exception("pipeline: sighting %s failed", work.sighting_id)
        sighting = session.get_one(Sighting, work.sighting_id)
        sighting.attempts += 1
        sighting.error = f"{type(exc).__name__}: {exc}"[:2000]
        if sighting.attempts >= MAX_ATTEMPTS:
            sighting.state = SightingState.FAILED.value
        return Outcome(work.sighting_id, sighting.state, error=sighting.error)

    def _parsed_ahead(self, work: Work) -> Work:
        """`work` with its message parsed; as it was if that fails (the failure then
        happens again inside _steps, where it counts as an attempt)."""
        if work.data is None:
            return work
        try:
            return dataclasses.replace(work, parsed=self._parse(work))
        except Exception:
            return work

    def _parse(self, work: Work) -> ParsedMessage:
        assert work.data is not None
        if work.origin:  # forwarded to the user's own dropbox: the original counts
            return parse_origin(work.origin, self.case)
        return parse(work.data, self.case)

    def _steps(self, session: Session, work: Work, directory: AccountDirectory) -> Outcome:
        if work.data is None:
            raise LookupError("raw bytes missing")
        parsed = work.parsed if work.parsed is not None else self._parse(work)
        identity = parsed.identity()
        connection = session.connection()
        found = _SEEN(connection).execute(
            connection,
            {
                "account_id": work.account_id,
                "identity": identity,
                "message_id": parsed.message_id or "",
            },
        )
        seen = dict(found.fetchall())  # id -> identity (a row can match both ways)
        known = next((id_ for id_, ident in seen.items() if ident == identity), None)
        if known is not None:
            self._done(work, known)
            self.writes.event(
                work.account_id,
                events.MESSAGE_SIGHTED,
                message_id=known,
                sighting_id=work.sighting_id,
                source=work.source,
            )
            return Outcome(work.sighting_id, SightingState.DONE.value, known)
        return self._new_message(session, work, parsed, identity, seen, directory)

    def _new_message(
        self,
        session: Session,
        work: Work,
        parsed: ParsedMessage,
        identity: str,
        seen: Mapping[int, str],
        directory: AccountDirectory,
    ) -> Outcome:
        roles = _roles(parsed)
        candidates = list(
            dict.fromkeys(a.normalized for _, a in roles if directory.can_be_contact(a.normalized))
        )
        matched = match_contacts(session, work.account_id, candidates)
        creatable = self._creatable(roles, matched, directory, parsed)
        if not matched and not creatable and work.keep == Keep.IF_MATCHED.value:
            _discard(session, work)
            return Outcome(work.sighting_id, SightingState.DISCARDED.value)

        flags = list(parsed.flags)
        if seen:  # same Message-ID, different message: keep both, and say so on both
            flags.append("message_id_reused")
            for row in session.connection().execute(_FLAGS_OF, {"b_ids": list(seen)}):
                if "message_id_reused" not in row.flags:
                    session.connection().execute(
                        _SET_FLAGS, {"b_id": row.id, "b_flags": [*row.flags, "message_id_reused"]}
                    )
        when = parsed.date or utcnow()
        if may_thread_by_subject(parsed):
            self.writes.flush(session)  # the subject fallback reads message_addresses
        conversation_id = find_conversation(session, work.account_id, parsed, candidates, when)
        message_id = self._insert_message(
            session, work, parsed, identity, directory, flags, conversation_id
        )
        record_references(session, work.account_id, message_id, parsed)
        created = self._auto_create(session, directory, creatable, message_id, parsed)
        matched.update(created)
        self._store_addresses(work.account_id, message_id, roles)
        contact_ids = self._attach(message_id, roles, matched)
        self._done(work, message_id)
        self.writes.event(
            work.account_id,
            events.MESSAGE_CREATED,
            message_id=message_id,
            sighting_id=work.sighting_id,
            source=work.source,
            conversation_id=conversation_id,
            contact_ids=contact_ids,
            auto_created_contact_ids=list(created.values()),
            flags=flags,
        )
        return Outcome(
            work.sighting_id,
            SightingState.DONE.value,
            message_id,
            created=True,
            contact_ids=contact_ids,
            auto_created=list(created.values()),
            flags=tuple(flags),
        )

    def _store_addresses(
        self, account_id: int, message_id: int, roles: list[tuple[Role, Address]]
    ) -> None:
        rows = {
            (address.normalized, role.value): {
                "message_id": message_id,
                "account_id": account_id,
                "address": address.normalized,
                "role": role.value,
            }
            for role, address in roles
        }
        self.writes.addresses += rows.values()

    def _attach(
        self, message_id: int, roles: list[tuple[Role, Address]], matched: dict[str, int]
    ) -> list[int]:
        rows = {
            (matched[a.normalized], role.value): {
                "message_id": message_id,
                "contact_id": matched[a.normalized],
                "role": role.value,
            }
            for role, a in roles
            if a.normalized in matched
        }
        self.writes.links += rows.values()
        return sorted({contact_id for contact_id, _ in rows})

    def _done(self, work: Work, message_id: int) -> None:
        self.writes.done.append(
            {"b_id": work.sighting_id, "b_message_id": message_id, "b_now": utcnow()}
        )

    def _creatable(
        self,
        roles: list[tuple[Role, Address]],
        matched: dict[str, int],
        directory: AccountDirectory,
        parsed: ParsedMessage,
    ) -> list[Address]:
        if not directory.auto_create:
            return []
        out: dict[str, Address] = {}
        for role, address in roles:
            key = address.normalized
            new = role in _AUTO_CREATE_ROLES and key not in matched and key not in out
            if new and directory.can_auto_create(key):
                out[key] = address
        cap = self.config.contacts.auto_create_max_per_message
        if len(out) > cap:
            log.warning(
                "message %s names %s new addresses; auto-creating only the first %s",
                parsed.message_id,
                len(out),
                cap,
            )
        return list(out.values())[:cap]

    def _auto_create(
        self,
        session: Session,
        directory: AccountDirectory,
        creatable: list[Address],
        message_id: int,
        parsed: ParsedMessage,
    ) -> dict[str, int]:
        created: dict[str, int] = {}
        if creatable:
            self.writes.flush(session)  # keep events in order; attach reads addresses
        for address in creatable:
            contact = create_contact(
                session,
                directory,
                [(address.normalized, address.addr_spec)],
                name=address.display_name,
                source="auto",
                source_message_id=message_id,
            )
            created[address.normalized] = contact.id
            log.info(
                "auto-created contact %s <%s> from message %s (Message-ID %s)",
                contact.id,
                address.normalized,
                message_id,
                parsed.message_id,
            )
        return created

    def _insert_message(
        self,
        session: Session,
        work: Work,
        parsed: ParsedMessage,
        identity: str,
        directory: AccountDirectory,
        flags: list[str],
        conversation_id: int,
    ) -> int:
        authors = [a.normalized for a in parsed.from_]
        outgoing = bool(authors) and all(directory.is_user(a) for a in authors)
        values: dict[str, Any] = {
            "account_id": work.account_id,
            "owner_user_id": work.user_id,
            "raw_message_id": work.raw_message_id,
            "conversation_id": conversation_id,
            "identity": identity,
            "message_id_header": parsed.message_id,
            "subject": parsed.subject,
            "sent_at": parsed.date,
            "direction": (Direction.OUTGOING if outgoing else Direction.INCOMING).value,
            "from_addresses": _jsonable(parsed.addresses.get("from", ())),
            "to_addresses": _jsonable(parsed.addresses.get("to", ())),
            "cc_addresses": _jsonable(parsed.addresses.get("cc", ())),
            "bcc_addresses": _jsonable(parsed.addresses.get("bcc", ())),
            "flags": flags,
        }
        values["created_at"] = utcnow()
        connection = session.connection()
        cursor = _INSERT_MESSAGE(connection).execute(connection, values)
        return int(cursor.fetchone()[0])


# Statements of the hot path, built once (ORM statement building costs more
# than SQLite's work here).
_m = table_of(Message).c
_s = table_of(Sighting).c
# Two index searches, not one OR: given `a = ? AND (b = ? OR c = ?)`, SQLite
# searches the (account_id, identity) index on account_id alone and scans every
# message of the account.
_SEEN = prepared(
    "seen",
    lambda: union_all(
        select(_m.id, _m.identity).where(
            _m.account_id == bindparam("account_id"), _m.identity == bindparam("identity")
        ),
        select(_m.id, _m.identity).where(
            _m.account_id == bindparam("account_id"),
            _m.message_id_header == bindparam("message_id"),
        ),
    ),
)
_FLAGS_OF = select(_m.id, _m.flags).where(_m.id.in_(bindparam("b_ids", expanding=True)))
_SET_FLAGS = (
    update(table_of(Message)).where(_m.id == bindparam("b_id")).values(flags=bindparam("b_flags"))
)
_INSERT_MESSAGE = prepared(
    "insert_message",
    lambda: insert(table_of(Message)).returning(_m.id),
    (
        "account_id",
        "owner_user_id",
        "raw_message_id",
        "conversation_id",
        "identity",
        "message_id_header",
        "subject",
        "sent_at",
        "direction",
        "from_addresses",
        "to_addresses",
        "cc_addresses",
        "bcc_addresses",
        "flags",
        "created_at",
    ),
)
_INSERT_ADDRESSES = insert(table_of(MessageAddress))
_INSERT_EVENT = insert(table_of(Event))
_DONE = (
    update(table_of(Sighting))
    .where(_s.id == bindparam("b_id"))
    .values(
        message_id=bindparam("b_message_id"),
        state=SightingState.DONE.value,
        processed_at=bindparam("b_now"),
        error=None,
    )
)


# Pending sightings with their bytes, oldest first, locked on PostgreSQL.
_PENDING_WORK = (
    select(
        _s.id,
        _s.account_id,
        _s.user_id,
        _s.source,
        _s.keep,
        _s.raw_message_id,
        table_of(RawMessage).c.data,
        _s.origin,
    )
    .select_from(
        table_of(Sighting).outerjoin(
            table_of(RawMessage), table_of(RawMessage).c.id == _s.raw_message_id
        )
    )
    .where(_s.state == SightingState.PENDING.value)
    .order_by(_s.id)
    .with_for_update(of=table_of(Sighting), skip_locked=True)
)
_CLAIM_AFTER = _PENDING_WORK.where(_s.id > bindparam("b_after")).limit(bindparam("b_limit"))


def _claim_after(session: Session, after: int, limit: int) -> list[Work]:
    """Up to `limit` pending sightings after id `after` (prebuilt: runs per batch)."""
    rows = session.connection().execute(_CLAIM_AFTER, {"b_after": after, "b_limit": limit})
    return [Work(*row) for row in rows]


_STILL_PENDING = (
    select(_s.id)
    .where(_s.id.in_(bindparam("b_ids", expanding=True)), _s.state == SightingState.PENDING.value)
    .with_for_update(skip_locked=True)
)


def _still_pending(session: Session, works: Sequence[Work]) -> list[Work]:
    """Those of `works` still pending, now in the write transaction (another worker
    may have finished some since they were read); locked on PostgreSQL."""
    ids = set(
        session.connection()
        .execute(_STILL_PENDING, {"b_ids": [w.sighting_id for w in works]})
        .scalars()
    )
    return [w for w in works if w.sighting_id in ids]


def _claim(session: Session, sighting_ids: Sequence[int]) -> list[Work]:
    statement = _PENDING_WORK.where(_s.id.in_(list(sighting_ids)))
    return [Work(*row) for row in session.connection().execute(statement)]


def _roles(parsed: ParsedMessage) -> list[tuple[Role, Address]]:
    out: list[tuple[Role, Address]] = []
    for header, role in _ROLE_OF_HEADER.items():
        if role is Role.FROM and "multiple_from" in parsed.flags:
            role = Role.DISPUTED_FROM  # each is only a claimed author
        out += [(role, address) for address in parsed.addresses.get(header, ())]
    return out


def _jsonable(addresses: Sequence[Address]) -> list[dict[str, str]]:
    return [{"name": a.display_name, "email": a.addr_spec} for a in addresses]


def _discard(session: Session, work: Work) -> None:
    """Scanned mail that involves no contact is not kept: drop the bytes."""
    session.execute(
        update(Sighting)
        .where(Sighting.id == work.sighting_id)
        .values(state=SightingState.DISCARDED.value, raw_message_id=None, processed_at=utcnow())
    )
    drop_raw_if_unused(session, work.raw_message_id)
