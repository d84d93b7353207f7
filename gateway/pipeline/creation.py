"""A message seen for the first time becomes a Message: its addresses matched to
contacts (and auto-created), threaded into a conversation, inserted, attached to
the contacts, announced (event message.created). Scanned mail that names no
contact is discarded instead (keep=if_matched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from gateway import events
from gateway.addresses import Address
from gateway.config import Config
from gateway.conversations import find_conversation, may_thread_by_subject, record_references
from gateway.directory import AccountDirectory
from gateway.matching import match_contacts
from gateway.models import Direction, Keep, Role, SightingState, utcnow
from gateway.parsing import ParsedMessage
from gateway.pipeline.autocreate import auto_create, creatable
from gateway.pipeline.invitations import apply_meetings, read_invites
from gateway.pipeline.lookups import BatchLookups
from gateway.pipeline.statements import FLAGS_OF, INSERT_MESSAGE, SET_FLAGS
from gateway.pipeline.work import Outcome, Work, discard
from gateway.pipeline.writes import Writes

_ROLE_OF_HEADER = {
    "from": Role.FROM,
    "sender": Role.SENDER,
    "reply-to": Role.REPLY_TO,
    "to": Role.TO,
    "cc": Role.CC,
    "bcc": Role.BCC,
}


def new_message(
    session: Session,
    writes: Writes,
    config: Config,
    work: Work,
    parsed: ParsedMessage,
    identity: str,
    seen: Mapping[int, str],
    directory: AccountDirectory,
    lookups: BatchLookups | None = None,
) -> Outcome:
    roles = roles_of(parsed)
    candidates = list(
        dict.fromkeys(a.normalized for _, a in roles if directory.can_be_contact(a.normalized))
    )
    known = lookups.matched(work.account_id, candidates) if lookups is not None else None
    matched = known if known is not None else match_contacts(session, work.account_id, candidates)
    can_create = creatable(config, roles, matched, directory, parsed)
    if not matched and not can_create and work.keep == Keep.IF_MATCHED.value:
        discard(session, work)
        return Outcome(work.sighting_id, SightingState.DISCARDED.value)

    flags = list(parsed.flags)
    if seen:  # same Message-ID, different message: keep both, and say so on both
        flags.append("message_id_reused")
        for row in session.connection().execute(FLAGS_OF, {"b_ids": list(seen)}):
            if "message_id_reused" not in row.flags:
                session.connection().execute(
                    SET_FLAGS, {"b_id": row.id, "b_flags": [*row.flags, "message_id_reused"]}
                )
    when = parsed.date or utcnow()
    if may_thread_by_subject(parsed):
        writes.flush(session)  # the subject fallback reads message_addresses
    conversation_id, new_thread = find_conversation(
        session, work.account_id, parsed, candidates, when
    )
    message_id = _insert_message(session, work, parsed, identity, directory, flags, conversation_id)
    record_references(session, work.account_id, message_id, parsed)
    created = auto_create(session, writes, directory, can_create, message_id, parsed)
    if created and lookups is not None:
        lookups.contacts_created()
    matched.update(created)
    _store_addresses(writes, work.account_id, message_id, roles)
    contact_ids = _attach(writes, message_id, roles, matched)
    writes.done_with(work.sighting_id, message_id)
    if new_thread:
        writes.event(
            work.account_id,
            events.CONVERSATION_CREATED,
            conversation_id=conversation_id,
            subject=parsed.subject,
            message_id=message_id,
            contact_ids=contact_ids,
        )
    writes.event(
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
    found = work.invites if work.invites is not None else read_invites(work.data)
    if found.invites and lookups is not None:  # its attendees may become contacts
        lookups.contacts_created()
    meetings = apply_meetings(session, writes, config, work, directory, message_id, found)
    return Outcome(
        work.sighting_id,
        SightingState.DONE.value,
        message_id,
        created=True,
        contact_ids=contact_ids,
        auto_created=list(created.values()),
        flags=tuple(flags),
        meeting_ids=meetings,
    )


def _store_addresses(
    writes: Writes, account_id: int, message_id: int, roles: list[tuple[Role, Address]]
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
    writes.addresses += rows.values()


def _attach(
    writes: Writes, message_id: int, roles: list[tuple[Role, Address]], matched: dict[str, int]
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
    writes.links += rows.values()
    return sorted({contact_id for contact_id, _ in rows})


def _insert_message(
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
    cursor = INSERT_MESSAGE(connection).execute(connection, values)
    return int(cursor.fetchone()[0])


def roles_of(parsed: ParsedMessage) -> list[tuple[Role, Address]]:
    """Each address of the message with its role (From, To, Cc, ...)."""
    out: list[tuple[Role, Address]] = []
    for header, role in _ROLE_OF_HEADER.items():
        if role is Role.FROM and "multiple_from" in parsed.flags:
            role = Role.DISPUTED_FROM  # each is only a claimed author
        out += [(role, address) for address in parsed.addresses.get(header, ())]
    return out


def _jsonable(addresses: Sequence[Address]) -> list[dict[str, str]]:
    return [{"name": a.display_name, "email": a.addr_spec} for a in addresses]
