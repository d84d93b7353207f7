"""The REST API, under /api/v1, with bearer tokens (`gateway user token create`).

POST /api/v1/messages sends a message as the token's user: either the JSON fields
(application/json) or a whole RFC 5322 message (message/rfc822, recipients taken
from its To, Cc and Bcc). It answers 202 with the queue id once the message is
committed to the delivery queue, with the same checks as the submission port.

GET /api/v1/deliveries/{id} is the delivery report of a message sent so (the id
POST answered): its state and, per recipient, the state (queued, sending,
deferred, sent, bounced, cancelled), the tries and the remote server's last reply.
Once sent, the message is stored as any other (GET /api/v1/messages/{id}, which
names its deliveries).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from admin.auth import Principal, principal
from admin.params import ItemId
from gateway import smtp_replies as replies
from gateway.config import Config
from gateway.db import Database
from gateway.errors import (
    Conflict,
    Forbidden,
    InputError,
    InvalidFields,
    MessageRejected,
    NotFound,
    TryLater,
    UnsupportedMedia,
)
from gateway.idempotency import Answered, answered, check_key, digest, remember_in
from gateway.mail_queue import Outgoing, Sender, enqueue_in, queue_rows, sent_in_last_hour
from gateway.models import User, UserAddress
from gateway.parsing import parse
from outbound.compose import Attachment, Fields, compose, needs_smtputf8
from outbound.hygiene import prepare

router = APIRouter(prefix="/api/v1")


class AttachmentIn(BaseModel):
    filename: str
    content_type: str = "application/octet-stream"
    content: str = Field(description="The file's bytes, base64")


class MessageIn(BaseModel):
    """A message to send, as fields (`from` must be one of the token user's addresses)."""

    model_config = {"populate_by_name": True, "extra": "forbid"}

    sender: str = Field(alias="from")
    to: list[str] = []
    cc: list[str] = []
    bcc: list[str] = []
    subject: str = ""
    text: str | None = None
    html: str | None = None
    in_reply_to: str | None = None
    references: list[str] = []
    attachments: list[AttachmentIn] = []


class Queued(BaseModel):
    id: int = Field(description="the delivery's id: GET /api/v1/deliveries/{id}")
    message_id: str
    recipients: list[str]
    delivery: str = Field(description="where its delivery report is")


class RecipientReport(BaseModel):
    address: str
    state: str
    attempts: int
    last_reply: str | None = Field(description="The remote server's last reply to it")


class DeliveryReport(BaseModel):
    id: int
    message_id: str
    state: str
    route: str | None
    attempts: int
    created_at: str
    next_attempt_at: str
    sent_copy: str | None = Field(description="The copy in the user's Sent folder")
    recipients: list[RecipientReport]


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": MessageIn.model_json_schema(by_alias=True)},
            "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/messages",
    status_code=202,
    response_model=Queued,
    openapi_extra=_BODY,
    summary="Send a message (queued for delivery; 202 once committed)",
)
async def send_message(request: Request) -> JSONResponse:
    config: Config = request.app.state.config
    db: Database = request.app.state.db
    who = await principal(request)
    who.require("send")
    body = await _body(request, config.submission.max_message_size)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    key = request.headers.get("idempotency-key")
    once = None
    if key is not None:
        once = (check_key(key), digest(kind.encode(), body, str(who.user_id).encode()))
        first = await asyncio.to_thread(_answered, db, who.account_id, once)
        if first is not None:  # a replay: the first answer again, nothing queued twice
            return JSONResponse(first.body, status_code=first.status)
    if kind == "message/rfc822":
        raw, recipients, utf8 = body, _header_recipients(body), not body.isascii()
    elif kind in ("application/json", ""):
        fields = _fields(body)
        raw, recipients, utf8 = compose(fields), fields.recipients, needs_smtputf8(fields)
    else:
        raise UnsupportedMedia("send application/json fields or a message/rfc822 message")
    outgoing = prepare(raw, smtp_utf8=utf8, local_part_case=config.addresses.local_part_case)
    user = await asyncio.to_thread(_sender, db, who, outgoing.senders)
    if not recipients:
        raise InputError("to", "the message names no recipient (To, Cc or Bcc)")
    limit = config.submission.max_messages_per_hour
    if limit and await asyncio.to_thread(sent_in_last_hour, db, user.user_id) >= limit:
        raise TryLater(replies.RATE_LIMITED)
    answer, new = await asyncio.to_thread(
        _enqueue, db, user, outgoing.senders[0], recipients, outgoing, once
    )
    if new:
        request.app.state.queued()
    return JSONResponse(answer.body, status_code=answer.status)


def _answered(db: Database, account_id: int, once: tuple[str, str]) -> Answered | None:
    with db.connection() as connection:
        return answered(connection, account_id, *once)


def _enqueue(
    db: Database,
    sender: Sender,
    mail_from: str,
    recipients: list[str],
    outgoing: Outgoing,
    once: tuple[str, str] | None,
) -> tuple[Answered, bool]:
    """Queue the message and, with an Idempotency-Key, keep the answer in the same
    transaction; (the answer, whether this call queued it)."""
    try:
        with db.connection() as connection:
            queued = enqueue_in(connection, sender, mail_from, recipients, outgoing, "api")
            result = Queued(
                id=queued.id,
                message_id=queued.message_id,
                recipients=recipients,
                delivery=f"/api/v1/deliveries/{queued.id}",
            )
            answer = Answered(202, result.model_dump())
            if once is not None:
                remember_in(connection, sender.account_id, once[0], once[1], answer)
            return answer, True
    except IntegrityError:
        if once is None:
            raise
    # The same key, committed first by a request running at the same time.
    first = _answered(db, sender.account_id, once)
    if first is None:
        raise Conflict("this Idempotency-Key is being used by another request")
    return first, False


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryReport,
    summary="A sent message's delivery report: each recipient's state and last reply",
)
async def delivery_report(delivery_id: ItemId, request: Request) -> DeliveryReport:
    db: Database = request.app.state.db
    who = await principal(request)
    if not who.scopes & {"send", "read"}:
        who.require("read")
    rows = await asyncio.to_thread(
        queue_rows, db, message_id=delivery_id, user_id=who.user_id, account_id=who.account_id
    )
    if not rows:
        raise NotFound(f"no delivery {delivery_id} of this token's")
    return DeliveryReport.model_validate(rows[0])


def _sender(db: Database, who: Principal, senders: tuple[str, ...]) -> Sender:
    """Who sends: the token's user, or with the account's token the user of the
    account whose address the From header gives; every From address theirs."""
    with db.read() as session:
        query = select(User).where(User.account_id == who.account_id)
        if who.user_id is not None:
            query = query.where(User.id == who.user_id)
        elif senders:
            owner = select(UserAddress.user_id).where(UserAddress.address == senders[0])
            query = query.where((User.email == senders[0]) | User.id.in_(owner))
        user = session.scalars(query).first()
        if user is None:
            raise Forbidden("from: not an address of a user of this account")
        addresses = frozenset(
            [
                user.email,
                *session.scalars(select(UserAddress.address).where(UserAddress.user_id == user.id)),
            ]
        )
        if any(s not in addresses for s in senders):
            raise Forbidden("from: not one of the addresses of the token's user")
        return Sender(user.account_id, user.id, user.email)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise MessageRejected(replies.TOO_BIG)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise MessageRejected(replies.TOO_BIG)
    return bytes(data)


def _fields(body: bytes) -> Fields:
    try:
        given = MessageIn.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidFields(errors) from exc
    return Fields(
        sender=given.sender,
        to=given.to,
        cc=given.cc,
        bcc=given.bcc,
        subject=given.subject,
        text=given.text,
        html=given.html,
        in_reply_to=given.in_reply_to,
        references=given.references,
        attachments=[Attachment(a.filename, a.content_type, a.content) for a in given.attachments],
    )


def _header_recipients(raw: bytes) -> list[str]:
    parsed = parse(raw)
    found: list[str] = []
    for name in ("to", "cc", "bcc"):
        for address in parsed.addresses.get(name, ()):
            if address.addr_spec not in found:
                found.append(address.addr_spec)
    return found
