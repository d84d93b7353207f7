"""thread(): put a message into a Conversation by Message-ID, In-Reply-To, References.

Parents found by the Message-IDs this message names; children that arrived
first are found through message_references naming this message's Message-ID;
several conversations joined by one message are merged. The subject is only a
last resort: a reply ("Re: ...", or with references we have not seen) joins a
recent conversation with the same subject that shares an address.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.db import insert_ignore
from gateway.models import Conversation, Message, MessageAddress, MessageReference
from gateway.parsing import ParsedMessage, thread_subject

SUBJECT_WINDOW = timedelta(days=30)


def thread(
    session: Session, message: Message, parsed: ParsedMessage, addresses: Sequence[str]
) -> Conversation:
    refs = list(dict.fromkeys([*parsed.references, *parsed.in_reply_to]))
    refs = [r for r in refs if r != parsed.message_id]
    account_id = message.account_id
    found: set[int | None] = set()
    if refs:
        found |= set(
            session.scalars(
                select(Message.conversation_id).where(
                    Message.account_id == account_id,
                    Message.message_id_header.in_(refs[-200:]),
                    Message.conversation_id.is_not(None),
                )
            ).all()
        )
        insert_ignore(
            session,
            MessageReference.__table__,  # type: ignore[arg-type]
            [{"message_id": message.id, "ref": r, "account_id": account_id} for r in refs],
            ["message_id", "ref"],
        )
    if parsed.message_id:
        found |= set(
            session.scalars(
                select(Message.conversation_id)
                .join(MessageReference, MessageReference.message_id == Message.id)
                .where(
                    MessageReference.account_id == account_id,
                    MessageReference.ref == parsed.message_id,
                    Message.conversation_id.is_not(None),
                )
            ).all()
        )
    found.discard(None)
    if not (found - {None}) and _looks_like_reply(parsed, refs):
        by_subject = _by_subject(session, message, parsed, addresses)
        if by_subject is not None:
            found.add(by_subject)
    ids = sorted(c for c in found if c is not None)
    if ids:
        conversation = _merge(session, ids)
    else:
        conversation = Conversation(
            account_id=account_id,
            subject=parsed.subject,
            subject_key=thread_subject(parsed.subject),
        )
        session.add(conversation)
        session.flush()
    message.conversation_id = conversation.id
    when = message.sent_at or message.created_at
    if when is not None and (
        conversation.last_message_at is None or when > conversation.last_message_at
    ):
        conversation.last_message_at = when
    return conversation


def _looks_like_reply(parsed: ParsedMessage, refs: list[str]) -> bool:
    return bool(refs) or thread_subject(parsed.subject) != parsed.subject.strip().casefold()


def _by_subject(
    session: Session, message: Message, parsed: ParsedMessage, addresses: Sequence[str]
) -> int | None:
    key = thread_subject(parsed.subject)
    if not key or not addresses:
        return None
    since = (message.sent_at or message.created_at) - SUBJECT_WINDOW
    return session.scalar(
        select(Conversation.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .join(MessageAddress, MessageAddress.message_id == Message.id)
        .where(
            Conversation.account_id == message.account_id,
            Conversation.subject_key == key,
            Conversation.last_message_at >= since,
            MessageAddress.address.in_(list(addresses)[:200]),
            Message.id != message.id,
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    )


def _merge(session: Session, ids: list[int]) -> Conversation:
    target = session.get(Conversation, ids[0])
    assert target is not None
    others = ids[1:]
    if others:
        latest = [
            c.last_message_at
            for c in session.scalars(select(Conversation).where(Conversation.id.in_(others)))
            if c.last_message_at is not None
        ]
        session.execute(
            update(Message)
            .where(Message.conversation_id.in_(others))
            .values(conversation_id=target.id)
            .execution_options(synchronize_session="fetch")
        )
        session.execute(delete(Conversation).where(Conversation.id.in_(others)))
        if latest:
            newest = max(latest)
            if target.last_message_at is None or newest > target.last_message_at:
                target.last_message_at = newest
    return target
