"""Stored mail over HTTP: messages and conversations (scope read).

    GET /messages                  list: contact_id or contact (an address),
                                   conversation_id, mailbox_id, direction, since,
                                   until; newest stored first, cursor pages
    GET /messages/{id}             one: parsed summary, text, contacts, sources,
                                   flags, attachments, deliveries of sent mail
    GET /messages/{id}/raw         the byte-exact message (message/rfc822, .eml)
    GET /messages/{id}/attachments            the list
    GET /messages/{id}/attachments/{number}   one, as a download
    GET /conversations             list (contact_id or contact), newest first
    GET /conversations/{id}        one, with its messages in the order they were sent

A member (a session's or a user's token) sees only the messages their own sources
saw; another account's are never found. Downloads are always attachments, never
shown inline by the browser, and sandboxed: a file's HTML cannot run as this site.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.auth import Principal, scoped
from admin.contact_filter import NO_ONE, wanted_contact
from admin.pagination import check_limit, page
from admin.params import ItemId, OptionalId
from admin.sessions import in_session
from gateway.config import Config
from gateway.errors import NotFound
from gateway.message_parts import attachment, contents
from gateway.message_queries import (
    MessageFilter,
    Reader,
    contacts_of,
    conversation_counts,
    conversation_messages,
    conversation_page,
    message_page,
    sightings_of,
    sources_of,
    visible_message,
)
from gateway.models import Conversation, Message, RawMessage, Sighting

router = APIRouter(prefix="/api/v1")
READ = Depends(scoped("read"))
DOWNLOAD = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


class Direction(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class Person(BaseModel):
    name: str | None = None
    email: str


class ContactRef(BaseModel):
    id: int
    name: str
    roles: list[str] = Field(description="how the message involves them: from, to, cc, ...")


class MessageOut(BaseModel):
    id: int
    message_id: str | None = Field(description="the Message-ID header")
    date: str | None
    direction: str
    sender: list[Person] = Field(alias="from")
    to: list[Person]
    cc: list[Person]
    subject: str
    conversation_id: int | None
    contacts: list[ContactRef]
    flags: list[str] = Field(description="e.g. multiple_from: shown, never silently dropped")
    sources: list[str] = Field(description="dropbox, imap, outbound, import")

    model_config = {"populate_by_name": True}


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


class SourceOut(BaseModel):
    source: str
    received_at: str
    mailbox_id: int | None
    folder: str | None
    uid: int | None
    state: str


class AttachmentOut(BaseModel):
    number: int
    filename: str
    content_type: str
    size: int
    content_id: str | None
    inline: bool
    url: str


class MessageDetail(MessageOut):
    bcc: list[Person]
    snippet: str
    text: str = Field(description="text/plain, or the words of the HTML body")
    has_html: bool
    size: int
    seen: list[SourceOut] = Field(description="every sighting the reader may see")
    attachments: list[AttachmentOut]
    deliveries: list[int] = Field(description="sent mail: ids for GET /api/v1/deliveries/{id}")


class ConversationOut(BaseModel):
    id: int
    subject: str
    last_message_at: str | None
    created_at: str
    messages: int = Field(description="how many of its messages the reader may see")


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    next_cursor: str | None


class ConversationDetail(ConversationOut):
    thread: list[MessageOut] = Field(description="its messages, in the order they were sent")


@router.get("/messages", response_model=MessagePage, summary="List stored messages")
async def list_messages(
    request: Request,
    contact_id: OptionalId = None,
    contact: str | None = None,
    conversation_id: OptionalId = None,
    mailbox_id: OptionalId = None,
    direction: Direction | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    who: Principal = READ,
) -> dict[str, Any]:
    check_limit(limit)
    config: Config = request.app.state.config
    query = {
        "account": who.account_id,
        "member": who.user_id,
        "list": "messages",
        "contact_id": contact_id,
        "contact": contact,
        "conversation_id": conversation_id,
        "mailbox_id": mailbox_id,
        "direction": direction,
        "since": since,
        "until": until,
    }
    before = request.app.state.cursors().after(cursor, query)
    reader = _reader(who)

    def work(session: Session) -> list[dict[str, Any]]:
        wanted = wanted_contact(session, config, who.account_id, contact_id, contact)
        if wanted == NO_ONE:
            return []
        given = MessageFilter(
            wanted,
            conversation_id,
            mailbox_id,
            direction.value if direction else None,
            since,
            until,
        )
        ids = message_page(session, reader, given, before, limit + 1)
        return _summaries(session, reader, ids)

    return page(await in_session(request, work), limit, request.app.state.cursors(), query)


@router.get("/messages/{message_id}", response_model=MessageDetail, summary="One message")
async def one_message(
    message_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    reader = _reader(who)

    def work(session: Session) -> dict[str, Any]:
        message = _visible(session, reader, message_id)
        raw = _raw(session, message)
        body = contents(raw)
        summary = _summaries(session, reader, [message.id])[0]
        seen = sightings_of(session, reader, [message.id])[message.id]
        return {
            **summary,
            "bcc": message.bcc_addresses,
            "snippet": body.snippet,
            "text": body.text,
            "has_html": body.html is not None,
            "size": len(raw),
            "seen": [_seen(s) for s in seen],
            "attachments": [
                {**a.__dict__, "url": f"/api/v1/messages/{message.id}/attachments/{a.number}"}
                for a in body.attachments
            ],
            "deliveries": [
                int(s.source_key.split(":", 1)[1])
                for s in seen
                if s.source == "outbound" and s.source_key.startswith("outbound:")
            ],
        }

    return await in_session(request, work)


RAW_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}
}


@router.get(
    "/messages/{message_id}/raw",
    response_class=Response,
    responses=RAW_DOC,
    summary="The message as it was received, byte for byte (.eml)",
)
async def raw_message(message_id: ItemId, request: Request, who: Principal = READ) -> Response:
    reader = _reader(who)
    data = await in_session(request, lambda s: _raw(s, _visible(s, reader, message_id)))
    return _download(data, "message/rfc822", f"message-{message_id}.eml")


@router.get(
    "/messages/{message_id}/attachments",
    response_model=list[AttachmentOut],
    summary="A message's attachments",
)
async def attachments(
    message_id: ItemId, request: Request, who: Principal = READ
) -> list[dict[str, Any]]:
    reader = _reader(who)
    raw = await in_session(request, lambda s: _raw(s, _visible(s, reader, message_id)))
    return [
        {**a.__dict__, "url": f"/api/v1/messages/{message_id}/attachments/{a.number}"}
        for a in contents(raw).attachments
    ]


FILE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    }
}


@router.get(
    "/messages/{message_id}/attachments/{number}",
    response_class=Response,
    responses=FILE_DOC,
    summary="Download one attachment",
)
async def download(
    message_id: ItemId,
    request: Request,
    number: int = Path(ge=1, le=10_000),
    who: Principal = READ,
) -> Response:
    reader = _reader(who)
    raw = await in_session(request, lambda s: _raw(s, _visible(s, reader, message_id)))
    found = attachment(raw, number)
    if found is None:
        raise NotFound(f"message {message_id} has no attachment {number}")
    described, data = found
    return _download(data, described.content_type, described.filename)


@router.get("/conversations", response_model=ConversationPage, summary="List conversations")
async def list_conversations(
    request: Request,
    contact_id: OptionalId = None,
    contact: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    who: Principal = READ,
) -> dict[str, Any]:
    check_limit(limit)
    config: Config = request.app.state.config
    query = {
        "account": who.account_id,
        "member": who.user_id,
        "list": "conversations",
        "contact_id": contact_id,
        "contact": contact,
    }
    before = request.app.state.cursors().after(cursor, query)
    reader = _reader(who)

    def work(session: Session) -> list[dict[str, Any]]:
        wanted = wanted_contact(session, config, who.account_id, contact_id, contact)
        if wanted == NO_ONE:
            return []
        ids = conversation_page(session, reader, wanted, before, limit + 1)
        counts = conversation_counts(session, reader, ids)
        rows = []
        for cid in ids:
            conversation = session.get(Conversation, cid)
            if conversation is not None:
                rows.append(_conversation(conversation, counts.get(cid, 0)))
        return rows

    return page(await in_session(request, work), limit, request.app.state.cursors(), query)


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    summary="One conversation, with its messages in order",
)
async def one_conversation(
    conversation_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    reader = _reader(who)

    def work(session: Session) -> dict[str, Any]:
        found = conversation_messages(session, reader, conversation_id)
        if found is None:
            raise NotFound(f"no conversation {conversation_id}")
        conversation, messages = found
        thread = _summaries(session, reader, [m.id for m in messages])
        return {**_conversation(conversation, len(messages)), "thread": thread}

    return await in_session(request, work)


def _reader(who: Principal) -> Reader:
    return Reader(who.account_id, who.user_id)


def _visible(session: Session, reader: Reader, message_id: int) -> Message:
    message = visible_message(session, reader, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    return message


def _raw(session: Session, message: Message) -> bytes:
    raw = session.get(RawMessage, message.raw_message_id)
    if raw is None:  # the raw row is kept as long as a message names it
        raise NotFound(f"the bytes of message {message.id} are gone")
    return raw.data


def _summaries(session: Session, reader: Reader, ids: list[int]) -> list[dict[str, Any]]:
    """Messages by id, in the order of `ids` (columns, not ORM objects: a page of 50
    is read in three queries)."""
    if not ids:
        return []
    m = Message
    rows = {
        r.id: r
        for r in session.execute(
            select(
                m.id,
                m.message_id_header,
                m.sent_at,
                m.direction,
                m.from_addresses,
                m.to_addresses,
                m.cc_addresses,
                m.subject,
                m.conversation_id,
                m.flags,
            ).where(m.id.in_(ids))
        )
    }
    contacts = contacts_of(session, ids)
    sources = sources_of(session, reader, ids)
    out = []
    for i in ids:
        r = rows[i]
        out.append(
            {
                "id": r.id,
                "message_id": r.message_id_header,
                "date": r.sent_at.isoformat() if r.sent_at else None,
                "direction": r.direction,
                "from": r.from_addresses,
                "to": r.to_addresses,
                "cc": r.cc_addresses,
                "subject": r.subject,
                "conversation_id": r.conversation_id,
                "contacts": contacts.get(i, []),
                "flags": list(r.flags),
                "sources": sources.get(i, []),
            }
        )
    return out


def _seen(sighting: Sighting) -> dict[str, Any]:
    mailbox_id = None
    if sighting.source == "imap" and sighting.source_key.startswith("imap:"):
        mailbox_id = int(sighting.source_key.split(":")[1])
    return {
        "source": sighting.source,
        "received_at": sighting.received_at.isoformat(),
        "mailbox_id": mailbox_id,
        "folder": sighting.folder,
        "uid": sighting.uid,
        "state": sighting.state,
    }


def _conversation(conversation: Conversation, count: int) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "subject": conversation.subject,
        "last_message_at": (
            conversation.last_message_at.isoformat() if conversation.last_message_at else None
        ),
        "created_at": conversation.created_at.isoformat(),
        "messages": count,
    }


def _download(data: bytes, content_type: str, filename: str) -> Response:
    ascii_name = "".join(
        c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in filename
    )
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    headers = {**DOWNLOAD, "Content-Disposition": disposition}
    return Response(data, media_type=content_type, headers=headers)
