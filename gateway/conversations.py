"""Threads: which Conversation a new message joins (Message-ID, In-Reply-To, References).

Parents are found by the Message-IDs the message names; children that
arrived first are found through message_references naming its Message-ID;
several conversations joined by one message are merged into the oldest. The
subject is only a last resort: a reply ("Re: ...", or with references we
have not seen) joins a recent conversation with the same subject that shares
an address.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, union, update
from sqlalchemy.orm import Session

from gateway.db import insert_ignore
from gateway.models import Conversation, Message, MessageAddress, MessageReference, table_of, utcnow
from gateway.parsing import ParsedMessage, thread_subject
from gateway.prepared import Prepared, padded_in, prepared

SUBJECT_WINDOW = timedelta(days=30)
MAX_REFS = 200  # references looked up in one prepared IN (gateway.prepared.IN_SIZES)


def references_of(parsed: ParsedMessage) -> list[str]:
    refs = list(dict.fromkeys([*parsed.references, *parsed.in_reply_to]))
    return [r for r in refs if r != parsed.message_id][-MAX_REFS:]


_messages = table_of(Message).c
_refs = table_of(MessageReference).c
_conversations = table_of(Conversation).c
_CHILDREN = (
    select(_messages.conversation_id)
    .join(table_of(MessageReference), _refs.message_id == _messages.id)
    .where(_refs.account_id == bindparam("account_id"), _refs.ref == bindparam("message_id"))
)


def parents(size: int, children: bool) -> Any:
    """Conversations of the messages named by `size` references (bound as r0, r1, ...),
    with those of the messages naming "message_id" when `children`."""
    found = select(_messages.conversation_id).where(
        _messages.account_id == bindparam("account_id"),
        _messages.message_id_header.in_(
            [bindparam(f"r{i}", type_=_messages.message_id_header.type) for i in range(size)]
        ),
    )
    return union(found, _CHILDREN) if children else found


@functools.cache
def _parents_of(size: int, children: bool) -> Callable[[Connection], Prepared]:
    return prepared(f"parents_{size}_{children}", functools.partial(parents, size, children))


_TOUCH = prepared(
    "touch_conversation",
    lambda: (
        update(table_of(Conversation))
        .where(
            _conversations.id == bindparam("b_target"),
            or_(
                _conversations.last_message_at.is_(None),
                _conversations.last_message_at < bindparam("b_when"),
            ),
        )
        .values(last_message_at=bindparam("b_when"))
    ),
)
_CREATE = prepared(
    "create_conversation",
    lambda: insert(table_of(Conversation)).returning(_conversations.id),
    ("account_id", "subject", "subject_key", "last_message_at", "created_at"),
)
_ONLY_CHILDREN = prepared("children", lambda: _CHILDREN)


def find_conversation(
    session: Session,
    account_id: int,
    parsed: ParsedMessage,
    addresses: Sequence[str],
    when: datetime,
) -> tuple[int, bool]:
    """The id of the conversation the message belongs to (created if need be), and
    whether it was created now."""
    connection = session.connection()
    refs = references_of(parsed)  # at most MAX_REFS: one prepared IN
    params: dict[str, Any] = {"account_id": account_id, "message_id": parsed.message_id}
    statement: Prepared | None = None
    if refs:
        size, binds = padded_in(refs, "r")
        params.update(binds)
        statement = _parents_of(size, parsed.message_id is not None)(connection)
    elif parsed.message_id:  # the common case: a new thread, or its first message
        statement = _ONLY_CHILDREN(connection)
    found: set[int] = set()
    if statement is not None:
        rows = statement.execute(connection, params).fetchall()
        found = {c for (c,) in rows if c is not None}
    if not found and _looks_like_reply(parsed, refs):
        by_subject = _by_subject(session, account_id, parsed, addresses, when)
        if by_subject is not None:
            found.add(by_subject)
    if found:
        target = _merge(session, sorted(found))
        _TOUCH(connection).execute(connection, {"b_target": target, "b_when": when})
        return target, False
    cursor = _CREATE(connection).execute(
        connection,
        {
            "account_id": account_id,
            "subject": parsed.subject,
            "subject_key": thread_subject(parsed.subject),
            "last_message_at": when,
            "created_at": utcnow(),
        },
    )
    return int(cursor.fetchone()[0]), True


def record_references(
    session: Session, account_id: int, message_id: int, parsed: ParsedMessage
) -> None:
    insert_ignore(
        session,
        table_of(MessageReference),
        [
            {"message_id": message_id, "ref": ref, "account_id": account_id}
            for ref in references_of(parsed)
        ],
        ["message_id", "ref"],
    )


def may_thread_by_subject(parsed: ParsedMessage) -> bool:
    """Whether find_conversation() may fall back to the subject (and so read addresses)."""
    return _looks_like_reply(parsed, references_of(parsed))


def _looks_like_reply(parsed: ParsedMessage, refs: list[str]) -> bool:
    return bool(refs) or thread_subject(parsed.subject) != parsed.subject.strip().casefold()


def _by_subject(
    session: Session,
    account_id: int,
    parsed: ParsedMessage,
    addresses: Sequence[str],
    when: datetime,
) -> int | None:
    key = thread_subject(parsed.subject)
    if not key or not addresses:
        return None
    return session.scalar(
        select(Conversation.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .join(MessageAddress, MessageAddress.message_id == Message.id)
        .where(
            Conversation.account_id == account_id,
            Conversation.subject_key == key,
            Conversation.last_message_at >= when - SUBJECT_WINDOW,
            MessageAddress.address.in_(list(addresses)[:MAX_REFS]),
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    )


def _merge(session: Session, ids: list[int]) -> int:
    """Fold conversations `ids` into the first; returns its id."""
    target, others = ids[0], ids[1:]
    if others:
        latest = session.scalar(
            select(func.max(Conversation.last_message_at)).where(Conversation.id.in_(ids))
        )
        session.execute(
            update(Message)
            .where(Message.conversation_id.in_(others))
            .values(conversation_id=target)
        )
        session.execute(delete(Conversation).where(Conversation.id.in_(others)))
        session.execute(
            update(Conversation).where(Conversation.id == target).values(last_message_at=latest)
        )
    return target
