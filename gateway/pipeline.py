"""The message pipeline: a pending Sighting becomes a Message on the right contacts.

    Sighting(pending) --parse--> ParsedMessage --identity--> known? --yes--> sighting done
                                                               |no
           match contacts (users and dropbox addresses never) -+- auto-create (if enabled)
                                                               |
             nothing matched and scanned (keep=if_matched)? --yes--> discarded, raw deleted
                                                               |no
         Message + addresses --> thread --> attach --> event --> sighting done

Each sighting is finished in a savepoint of one batch transaction, so every
step is redone from database state after a crash: a sighting is either still
pending (and done again from the start) or done, never half done. Workers
claim batches with FOR UPDATE SKIP LOCKED on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session

from gateway import events
from gateway.addresses import Address
from gateway.config import Config
from gateway.contacts import create_contact
from gateway.conversations import thread
from gateway.db import Database, insert_ignore
from gateway.directory import AccountDirectory
from gateway.matching import match_contacts
from gateway.models import (
    Account,
    Direction,
    Keep,
    Message,
    MessageAddress,
    MessageContact,
    RawMessage,
    Role,
    Sighting,
    SightingState,
    utcnow,
)
from gateway.parsing import ParsedMessage, parse

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


class Pipeline:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config

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
            batch = self._run_batch(size, after)
            if not batch:
                break
            outcomes += batch
            after = max(o.sighting_id for o in batch)
        return outcomes

    def process(self, sighting_ids: Sequence[int]) -> list[Outcome]:
        """Finish the given sightings (those still pending) in one transaction."""
        with self.db.session() as session:
            sightings = session.scalars(
                select(Sighting)
                .where(Sighting.id.in_(list(sighting_ids)), Sighting.state == "pending")
                .order_by(Sighting.id)
                .with_for_update(skip_locked=True)
            ).all()
            return self._finish(session, sightings)

    def _run_batch(self, size: int, after: int) -> list[Outcome]:
        with self.db.session() as session:
            sightings = session.scalars(
                select(Sighting)
                .where(Sighting.state == SightingState.PENDING.value, Sighting.id > after)
                .order_by(Sighting.id)
                .limit(size)
                .with_for_update(skip_locked=True)
            ).all()
            return self._finish(session, sightings)

    def _finish(self, session: Session, sightings: Sequence[Sighting]) -> list[Outcome]:
        directories: dict[int, AccountDirectory] = {}
        outcomes = []
        for sighting in sightings:
            directory = directories.get(sighting.account_id)
            if directory is None:
                account = session.get(Account, sighting.account_id)
                assert account is not None
                directory = AccountDirectory.load(session, account, self.config)
                directories[sighting.account_id] = directory
            outcomes.append(self._finish_one(session, sighting, directory))
        return outcomes

    def _finish_one(
        self, session: Session, sighting: Sighting, directory: AccountDirectory
    ) -> Outcome:
        sighting_id = sighting.id
        try:
            with session.begin_nested():
                return self._steps(session, sighting, directory)
        except Exception as exc:  # one bad message never stops the batch
            sighting = session.get_one(Sighting, sighting_id)
            sighting.attempts += 1
            sighting.error = f"{type(exc).__name__}: {exc}"[:2000]
            if sighting.attempts >= MAX_ATTEMPTS:
                sighting.state = SightingState.FAILED.value
            log.exception(
                "pipeline: sighting %s failed (attempt %s)", sighting_id, sighting.attempts
            )
            return Outcome(sighting_id, sighting.state, error=sighting.error)

    def _steps(self, session: Session, sighting: Sighting, directory: AccountDirectory) -> Outcome:
        raw = session.get(RawMessage, sighting.raw_message_id) if sighting.raw_message_id else None
        if raw is None:
            raise LookupError("raw bytes missing")
        case = self.config.addresses.local_part_case
        parsed = parse(raw.data, case)
        identity = parsed.identity()
        known = session.scalar(
            select(Message).where(
                Message.account_id == sighting.account_id, Message.identity == identity
            )
        )
        if known is not None:
            _done(sighting, known.id)
            events.emit(
                session,
                sighting.account_id,
                events.MESSAGE_SIGHTED,
                message_id=known.id,
                sighting_id=sighting.id,
                source=sighting.source,
            )
            return Outcome(sighting.id, sighting.state, known.id, flags=tuple(known.flags))

        roles = _roles(parsed)
        candidates = [a.normalized for _, a in roles if directory.can_be_contact(a.normalized)]
        matched = match_contacts(session, sighting.account_id, candidates)
        creatable = self._creatable(roles, matched, directory, parsed)
        if not matched and not creatable and sighting.keep == Keep.IF_MATCHED.value:
            _discard(session, sighting)
            return Outcome(sighting.id, sighting.state)

        message = self._new_message(session, sighting, parsed, identity, directory)
        created = [
            create_contact(
                session,
                directory,
                [(address.normalized, address.addr_spec)],
                name=address.display_name,
                source="auto",
                source_message_id=message.id,
            ).id
            for address in creatable
        ]
        for address, contact_id in zip(creatable, created, strict=True):
            matched[address.normalized] = contact_id
            log.info(
                "auto-created contact %s <%s> from message %s (Message-ID %s)",
                contact_id,
                address.normalized,
                message.id,
                parsed.message_id,
            )
        _store_addresses(session, message, roles)
        thread(session, message, parsed, candidates)
        contact_ids = _attach(session, message, roles, matched)
        _done(sighting, message.id)
        events.emit(
            session,
            sighting.account_id,
            events.MESSAGE_CREATED,
            message_id=message.id,
            sighting_id=sighting.id,
            source=sighting.source,
            direction=message.direction,
            contact_ids=contact_ids,
            auto_created_contact_ids=created,
            flags=list(message.flags),
        )
        return Outcome(
            sighting.id,
            sighting.state,
            message.id,
            created=True,
            contact_ids=contact_ids,
            auto_created=created,
            flags=tuple(message.flags),
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

    def _new_message(
        self,
        session: Session,
        sighting: Sighting,
        parsed: ParsedMessage,
        identity: str,
        directory: AccountDirectory,
    ) -> Message:
        flags = list(parsed.flags)
        reused = None
        if parsed.message_id:
            reused = session.scalar(
                select(Message).where(
                    Message.account_id == sighting.account_id,
                    Message.message_id_header == parsed.message_id,
                )
            )
        if reused is not None:
            # Same Message-ID, different message: keep both, and say so on both.
            flags.append("message_id_reused")
            if "message_id_reused" not in reused.flags:
                reused.flags = [*reused.flags, "message_id_reused"]
        authors = [a.normalized for a in parsed.from_]
        outgoing = bool(authors) and all(directory.is_user(a) for a in authors)
        message = Message(
            account_id=sighting.account_id,
            owner_user_id=sighting.user_id,
            raw_message_id=sighting.raw_message_id,
            identity=identity,
            message_id_header=parsed.message_id,
            subject=parsed.subject,
            sent_at=parsed.date,
            direction=(Direction.OUTGOING if outgoing else Direction.INCOMING).value,
            from_addresses=_jsonable(parsed.addresses.get("from", ())),
            to_addresses=_jsonable(parsed.addresses.get("to", ())),
            cc_addresses=_jsonable(parsed.addresses.get("cc", ())),
            bcc_addresses=_jsonable(parsed.addresses.get("bcc", ())),
            flags=flags,
        )
        session.add(message)
        session.flush()
        return message


def _roles(parsed: ParsedMessage) -> list[tuple[Role, Address]]:
    out: list[tuple[Role, Address]] = []
    for header, role in _ROLE_OF_HEADER.items():
        if role is Role.FROM and "multiple_from" in parsed.flags:
            role = Role.DISPUTED_FROM
        out += [(role, address) for address in parsed.addresses.get(header, ())]
    return out


def _jsonable(addresses: Sequence[Address]) -> list[dict[str, object]]:
    return [{"name": a.display_name, "email": a.addr_spec} for a in addresses]


def _store_addresses(session: Session, message: Message, roles: list[tuple[Role, Address]]) -> None:
    rows = {
        (address.normalized, role.value): {
            "message_id": message.id,
            "account_id": message.account_id,
            "address": address.normalized,
            "role": role.value,
        }
        for role, address in roles
    }
    if rows:
        session.execute(insert(MessageAddress), list(rows.values()))


def _attach(
    session: Session,
    message: Message,
    roles: list[tuple[Role, Address]],
    matched: dict[str, int],
) -> list[int]:
    rows = {
        (matched[a.normalized], role.value): {
            "message_id": message.id,
            "contact_id": matched[a.normalized],
            "role": role.value,
        }
        for role, a in roles
        if a.normalized in matched
    }
    insert_ignore(
        session,
        MessageContact.__table__,  # type: ignore[arg-type]
        list(rows.values()),
        ["message_id", "contact_id", "role"],
    )
    return sorted({contact_id for contact_id, _ in rows})


def _done(sighting: Sighting, message_id: int) -> None:
    sighting.message_id = message_id
    sighting.state = SightingState.DONE.value
    sighting.processed_at = utcnow()
    sighting.error = None


def _discard(session: Session, sighting: Sighting) -> None:
    """Scanned mail that involves no contact is not kept: drop the bytes."""
    raw_id = sighting.raw_message_id
    sighting.state = SightingState.DISCARDED.value
    sighting.raw_message_id = None
    sighting.processed_at = utcnow()
    session.flush()
    if raw_id is None:
        return
    session.execute(
        delete(RawMessage).where(
            RawMessage.id == raw_id,
            ~exists().where(Sighting.raw_message_id == raw_id),
            ~exists().where(Message.raw_message_id == raw_id),
        )
    )
