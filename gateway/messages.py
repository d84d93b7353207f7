"""Reading stored messages back: lists for the CLI (and later the admin pages)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from gateway.contacts import find_contact
from gateway.models import Contact, ContactEmail, Message, MessageContact, Sighting


@dataclass(frozen=True)
class MessageView:
    id: int
    message_id: str | None
    date: datetime | None
    direction: str
    authors: list[dict[str, Any]]
    to: list[dict[str, Any]]
    cc: list[dict[str, Any]]
    subject: str
    conversation_id: int | None
    contacts: list[str]
    flags: list[str]
    sources: list[str]

    @property
    def author_text(self) -> str:
        """Who it is from; a message with several From headers never shows just one."""
        names = ", ".join(a["email"] for a in self.authors) or "(no From)"
        if "multiple_from" in self.flags:
            return f"MALFORMED ({len(self.authors)} From headers): {names}"
        return names

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "date": self.date.isoformat() if self.date else None,
            "direction": self.direction,
            "from": self.authors,
            "from_display": self.author_text,
            "to": self.to,
            "cc": self.cc,
            "subject": self.subject,
            "conversation_id": self.conversation_id,
            "contacts": self.contacts,
            "flags": self.flags,
            "sources": self.sources,
        }


def list_messages(
    session: Session,
    account_id: int,
    *,
    contact_email: str | None = None,
    user_id: int | None = None,
    unattached: bool = False,
    limit: int = 50,
    case: str = "lower",
) -> list[MessageView]:
    query = select(Message).where(Message.account_id == account_id)
    if contact_email is not None:
        contact = find_contact(session, account_id, contact_email, case)
        query = query.where(
            exists().where(
                MessageContact.message_id == Message.id, MessageContact.contact_id == contact.id
            )
        )
    if user_id is not None:
        query = query.where(
            exists().where(Sighting.message_id == Message.id, Sighting.user_id == user_id)
        )
    if unattached:
        query = query.where(~exists().where(MessageContact.message_id == Message.id))
    query = query.order_by(Message.sent_at.desc().nulls_last(), Message.id.desc()).limit(limit)
    messages = session.scalars(query).all()
    return _views(session, messages)


def _views(session: Session, messages: Sequence[Message]) -> list[MessageView]:
    ids = [m.id for m in messages]
    contacts: dict[int, list[str]] = {i: [] for i in ids}
    sources: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        rows = session.execute(
            select(MessageContact.message_id, ContactEmail.display, Contact.name)
            .join(Contact, Contact.id == MessageContact.contact_id)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(MessageContact.message_id.in_(ids))
            .distinct()
        )
        for message_id, email, _name in rows:
            if email not in contacts[message_id]:
                contacts[message_id].append(email)
        for seen_id, source in session.execute(
            select(Sighting.message_id, Sighting.source).where(Sighting.message_id.in_(ids))
        ):
            if seen_id is not None and source not in sources[seen_id]:
                sources[seen_id].append(source)
    return [
        MessageView(
            id=m.id,
            message_id=m.message_id_header,
            date=m.sent_at,
            direction=m.direction,
            authors=list(m.from_addresses),
            to=list(m.to_addresses),
            cc=list(m.cc_addresses),
            subject=m.subject,
            conversation_id=m.conversation_id,
            contacts=sorted(contacts[m.id]),
            flags=list(m.flags),
            sources=sources[m.id],
        )
        for m in messages
    ]
