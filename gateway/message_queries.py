"""Which stored messages and conversations a reader may see, filtered, a page at a time.

Every query is scoped to an account and, for a member, to the messages one of their
own sources saw (a sighting of theirs: dropbox, their mailboxes, their sent mail).
Pages go newest stored first, by id, and continue `before` an id: the query that
lists a contact's mail walks the (contact_id, message_id) index backwards and stops
after one page, however much mail the account holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from gateway.models import (
    Contact,
    Conversation,
    Mailbox,
    Message,
    MessageAddress,
    MessageContact,
    Sighting,
    Source,
)


@dataclass(frozen=True)
class Reader:
    """Who reads: an account, and for a member their user id."""

    account_id: int
    user_id: int | None = None


@dataclass(frozen=True)
class MessageFilter:
    contact_id: int | None = None
    conversation_id: int | None = None
    mailbox_id: int | None = None
    direction: str | None = None
    since: datetime | None = None  # sent at or after
    until: datetime | None = None  # sent before
    source: str | None = None  # seen by this kind of source (e.g. "dropbox")
    search: str | None = None  # in the subject or an address, any case
    matched: bool = False  # only mail on a contact


def visible(reader: Reader, m: Any = Message) -> Any:
    """The condition on Message (or an alias of it) that `reader` may see it."""
    condition = m.account_id == reader.account_id
    if reader.user_id is not None:
        mine = exists().where(Sighting.message_id == m.id, Sighting.user_id == reader.user_id)
        condition = and_(condition, mine)
    return condition


def inbox_page(
    session: Session, reader: Reader, given: MessageFilter, before: int, limit: int
) -> list[int]:
    """The newest message of each conversation with a message that matches, newest
    first, below `before`: one entry a conversation, however many of its messages
    match, and on no later page again (a conversation shows where its newest
    matching message is). Messages without a conversation stand alone."""
    newer = aliased(Message)
    query = select(Message.id).where(visible(reader), *_conditions(session, reader, given))
    query = query.where(
        or_(
            Message.conversation_id.is_(None),
            ~exists().where(
                newer.conversation_id == Message.conversation_id,
                newer.id > Message.id,
                visible(reader, newer),
                *_conditions(session, reader, given, newer),
            ),
        )
    )
    if before:
        query = query.where(Message.id < before)
    return list(session.scalars(query.order_by(Message.id.desc()).limit(limit)))


def message_page(
    session: Session, reader: Reader, given: MessageFilter, before: int, limit: int
) -> list[int]:
    """Up to `limit` ids of messages `reader` may see that match, newest first, each
    below `before` (0: from the newest)."""
    return list(session.scalars(message_page_query(session, reader, given, before, limit)))


def message_page_query(
    session: Session, reader: Reader, given: MessageFilter, before: int, limit: int
) -> Select[Any]:
    """The statement of message_page (its plan is tested: an index, never a scan)."""
    if given.contact_id is not None:
        # Driven from the contact's links (index contact_id, message_id), newest first.
        mid = MessageContact.message_id
        query: Select[Any] = (
            select(mid)
            .join(Message, Message.id == mid)
            .where(MessageContact.contact_id == given.contact_id)
            .group_by(mid)
            .order_by(mid.desc())
        )
        key = mid
    else:
        query = select(Message.id).order_by(Message.id.desc())
        key = Message.id
    query = query.where(visible(reader))
    if before:
        query = query.where(key < before)
    for condition in _conditions(session, reader, given):
        query = query.where(condition)
    return query.limit(limit)


def _conditions(
    session: Session, reader: Reader, given: MessageFilter, m: Any = Message
) -> list[Any]:
    """The filter's conditions on Message, or on an alias of it."""
    found: list[Any] = []
    if given.conversation_id is not None:
        found.append(m.conversation_id == given.conversation_id)
    if given.direction is not None:
        found.append(m.direction == given.direction)
    if given.since is not None:
        found.append(m.sent_at >= given.since)
    if given.until is not None:
        found.append(m.sent_at < given.until)
    if given.matched:
        found.append(exists().where(MessageContact.message_id == m.id))
    if given.source is not None:
        seen = exists().where(Sighting.message_id == m.id, Sighting.source == given.source)
        if reader.user_id is not None:
            seen = seen.where(Sighting.user_id == reader.user_id)
        found.append(seen)
    if given.search:
        words = given.search.lower()
        found.append(
            or_(
                func.lower(m.subject).contains(words, autoescape=True),
                exists().where(
                    MessageAddress.message_id == m.id,
                    MessageAddress.address.contains(words, autoescape=True),
                ),
            )
        )
    if given.mailbox_id is not None:
        mailbox = session.get(Mailbox, given.mailbox_id)
        if (
            mailbox is None
            or mailbox.account_id != reader.account_id
            or (reader.user_id is not None and mailbox.user_id != reader.user_id)
        ):
            found.append(m.id < 0)  # another's mailbox: nothing, as for no mailbox
        else:
            prefix = f"imap:{mailbox.id}:"
            found.append(
                exists().where(
                    Sighting.message_id == m.id,
                    Sighting.user_id == mailbox.user_id,
                    Sighting.source == Source.IMAP.value,
                    # LIKE, not a range: PostgreSQL's collations order ':' unlike bytes.
                    Sighting.source_key.startswith(prefix, autoescape=True),
                )
            )
    return found


def visible_message(session: Session, reader: Reader, message_id: int) -> Message | None:
    return session.scalar(select(Message).where(Message.id == message_id, visible(reader)))


def conversation_page(
    session: Session, reader: Reader, contact_id: int | None, before: int, limit: int
) -> list[int]:
    """Ids of conversations with a message `reader` may see (and, given a contact,
    one of theirs), newest first, below `before`."""
    cid = Message.conversation_id
    query = select(cid).where(cid.is_not(None), visible(reader))
    if contact_id is not None:
        query = query.join(MessageContact, MessageContact.message_id == Message.id).where(
            MessageContact.contact_id == contact_id
        )
    if before:
        query = query.where(cid < before)
    ids = session.scalars(query.group_by(cid).order_by(cid.desc()).limit(limit))
    return [i for i in ids if i is not None]


def conversation_messages(
    session: Session, reader: Reader, conversation_id: int
) -> tuple[Conversation, Sequence[Message]] | None:
    """A conversation and its messages `reader` may see, in the order they were sent."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.account_id != reader.account_id:
        return None
    messages = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, visible(reader))
        .order_by(Message.sent_at.asc().nulls_last(), Message.id)
    ).all()
    if not messages:
        return None  # nothing of it is the member's: as if it did not exist
    return conversation, messages


def conversation_counts(session: Session, reader: Reader, ids: Sequence[int]) -> dict[int, int]:
    """How many messages of each conversation `reader` may see."""
    rows = session.execute(
        select(Message.conversation_id, func.count())
        .where(Message.conversation_id.in_(ids), visible(reader))
        .group_by(Message.conversation_id)
    )
    return {cid: count for cid, count in rows if cid is not None}


def contacts_of(session: Session, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each message's contacts: id, name, and the addresses by which it involves them."""
    found: dict[int, dict[int, dict[str, Any]]] = {i: {} for i in ids}
    if not ids:
        return {}
    rows = session.execute(
        select(MessageContact.message_id, MessageContact.role, Contact.id, Contact.name)
        .join(Contact, Contact.id == MessageContact.contact_id)
        .where(MessageContact.message_id.in_(ids))
        .order_by(MessageContact.message_id, Contact.id)
    )
    for message_id, role, contact_id, name in rows:
        entry = found[message_id].setdefault(
            contact_id, {"id": contact_id, "name": name, "roles": []}
        )
        if role not in entry["roles"]:
            entry["roles"].append(role)
    return {i: list(c.values()) for i, c in found.items()}


def sightings_of(session: Session, reader: Reader, ids: Sequence[int]) -> dict[int, list[Sighting]]:
    """Where each message was seen (a member: only by their own sources), oldest first."""
    found: dict[int, list[Sighting]] = {i: [] for i in ids}
    if not ids:
        return found
    query = select(Sighting).where(Sighting.message_id.in_(ids)).order_by(Sighting.id)
    if reader.user_id is not None:
        query = query.where(Sighting.user_id == reader.user_id)
    for sighting in session.scalars(query):
        if sighting.message_id is not None:
            found[sighting.message_id].append(sighting)
    return found


def sources_of(session: Session, reader: Reader, ids: Sequence[int]) -> dict[int, list[str]]:
    """Each message's kinds of source (dropbox, imap, ...), in the order first seen (a
    member: only their own sightings)."""
    query = (
        select(Sighting.message_id, Sighting.source)
        .where(Sighting.message_id.in_(ids))
        .order_by(Sighting.id)
    )
    if reader.user_id is not None:
        query = query.where(Sighting.user_id == reader.user_id)
    found: dict[int, list[str]] = {}
    for message_id, source in session.execute(query):
        if message_id is None:
            continue
        kinds = found.setdefault(message_id, [])
        if source not in kinds:
            kinds.append(source)
    return found
