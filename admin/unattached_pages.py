"""Dropbox mail that is on no contact yet, and dropbox mail held in quarantine.

    GET  /inbox/unattached                          both lists (a member: their own)
    POST /inbox/unattached/{id}/create              a contact from one of its addresses
    POST /inbox/unattached/{id}/attach              add one of its addresses to a contact
    POST /inbox/quarantine/{sighting}/approve       the pipeline then stores and attaches it
    POST /inbox/quarantine/{sighting}/reject        discarded, its bytes dropped

Mail attaches to contacts through its addresses: creating a contact from an address,
or adding the address to an existing contact, attaches this message and every other
stored message that names the address (gateway.contacts.attach_existing).
"""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, minutes, page, visit
from gateway import quarantine
from gateway.contacts import add_contact, find_contact, update_contact
from gateway.directory import AccountDirectory
from gateway.errors import GatewayError, InputError, NotFound
from gateway.message_queries import Reader, visible
from gateway.models import (
    Account,
    Message,
    MessageAddress,
    MessageContact,
    RawMessage,
    Sighting,
    SightingState,
    Source,
)

router = APIRouter(include_in_schema=False)
HERE = "/inbox/unattached"
PAGE = 50
DONE = {
    "created": "Contact created: this message and the other mail naming the address are on it.",
    "attached": "Address added to the contact: this message and its other mail are on it now.",
    "approved": "Approved: the message is stored and attached within seconds.",
    "rejected": "Rejected: the message is discarded.",
    "stale": STALE_FORM,
}
_HEADERS = BytesHeaderParser(policy=policy.default)


@router.get(HERE)
async def unattached(request: Request, done: str = "", error: str = "") -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    return await _page(request, here, notice=DONE.get(done, ""))


async def _page(
    request: Request, here: Visit, status: int = 200, notice: str = "", error: str = ""
) -> Response:
    config = config_of(request)
    reader = Reader(here.principal.account_id, here.principal.user_id)

    def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with db_of(request).read() as session:
            account = session.get_one(Account, reader.account_id)
            directory = AccountDirectory.load(session, account, config)
            return _unattached(session, reader, directory), _held(session, reader)

    mails, held = await asyncio.to_thread(work)
    return await page(
        request,
        here,
        "unattached.html",
        status,
        mails=mails,
        held=held,
        notice=notice,
        error=error,
    )


@router.post(HERE + "/{message_id}/create")
async def create(message_id: int, request: Request) -> Response:
    return await _act(request, message_id, "create")


@router.post(HERE + "/{message_id}/attach")
async def attach(message_id: int, request: Request) -> Response:
    return await _act(request, message_id, "attach")


async def _act(request: Request, message_id: int, action: str) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back(HERE, "stale")
    config = config_of(request)
    reader = Reader(here.principal.account_id, here.principal.user_id)
    case = config.addresses.local_part_case

    def work() -> None:
        with db_of(request).session() as session:
            address = _address_of(session, reader, message_id, fields.get("address", ""))
            account = session.get_one(Account, reader.account_id)
            directory = AccountDirectory.load(session, account, config)
            if action == "create":
                name = fields.get("name", "").strip()[:200]
                add_contact(session, directory, [address], name, case, message_id)
                return
            wanted = fields.get("contact", "").strip()
            if not wanted:
                raise InputError("contact", "enter an address of the contact to attach to")
            try:
                contact = find_contact(session, reader.account_id, wanted, case)
            except NotFound:
                raise InputError("contact", f"no contact has the address {wanted}") from None
            emails = [e.display for e in contact.emails] + [address]
            update_contact(session, directory, contact, case, emails=emails)

    try:
        await asyncio.to_thread(work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="message")
    except GatewayError as exc:
        return await _page(request, here, 422, error=str(exc))
    return back(HERE, "created" if action == "create" else "attached")


@router.post("/inbox/quarantine/{sighting_id}/{decision}")
async def decide(sighting_id: int, decision: str, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if decision not in ("approve", "reject"):
        return await page(request, here, "not_found.html", 404, what="page")
    if await form_of(request, here) is None:
        return back(HERE, "stale")
    reader = Reader(here.principal.account_id, here.principal.user_id)

    def work() -> None:
        with db_of(request).session() as session:
            sighting = session.get(Sighting, sighting_id) if 0 < sighting_id < 2**63 else None
            if sighting is None or (
                reader.user_id is not None and sighting.user_id != reader.user_id
            ):
                raise NotFound(f"no quarantined message {sighting_id}")
            if decision == "approve":
                quarantine.approve(session, reader.account_id, sighting_id)
            else:
                quarantine.reject(session, reader.account_id, sighting_id)

    try:
        await asyncio.to_thread(work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="quarantined message")
    return back(HERE, "approved" if decision == "approve" else "rejected")


# -- the lists -------------------------------------------------------------------------


def _unattached(
    session: Session, reader: Reader, directory: AccountDirectory
) -> list[dict[str, Any]]:
    seen = exists().where(
        Sighting.message_id == Message.id, Sighting.source == Source.DROPBOX.value
    )
    if reader.user_id is not None:
        seen = seen.where(Sighting.user_id == reader.user_id)
    on_contact = exists().where(MessageContact.message_id == Message.id)
    mails = session.scalars(
        select(Message)
        .where(visible(reader), seen, ~on_contact)
        .order_by(Message.id.desc())
        .limit(PAGE)
    ).all()
    ids = [m.id for m in mails]
    addresses: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
    if ids:
        for message_id, address, role in session.execute(
            select(MessageAddress.message_id, MessageAddress.address, MessageAddress.role)
            .where(MessageAddress.message_id.in_(ids))
            .order_by(MessageAddress.id)
        ):
            if directory.is_user(address) or directory.is_dropbox(address):
                continue
            if address not in [a for a, _ in addresses[message_id]]:
                addresses[message_id].append((address, role))
    return [
        {
            "id": m.id,
            "subject": m.subject or "(no subject)",
            "date": minutes(m.sent_at or m.created_at),
            "from": ", ".join(a.get("email", "") for a in m.from_addresses),
            "addresses": addresses[m.id],
            "name": _name_of(m, addresses[m.id]),
        }
        for m in mails
    ]


def _name_of(mail: Message, addresses: list[tuple[str, str]]) -> str:
    """The display name the first candidate address came with, if any."""
    if not addresses:
        return ""
    first = addresses[0][0]
    for a in (*mail.from_addresses, *mail.to_addresses, *mail.cc_addresses):
        if str(a.get("email", "")).lower() == first:
            return str(a.get("name") or "")
    return ""


def _held(session: Session, reader: Reader) -> list[dict[str, Any]]:
    query = (
        select(Sighting, RawMessage.data, RawMessage.created_at)
        .outerjoin(RawMessage, RawMessage.id == Sighting.raw_message_id)
        .where(
            Sighting.account_id == reader.account_id,
            Sighting.state == SightingState.QUARANTINED.value,
        )
        .order_by(Sighting.id.desc())
        .limit(PAGE)
    )
    if reader.user_id is not None:
        query = query.where(Sighting.user_id == reader.user_id)
    out = []
    for sighting, data, received in session.execute(query):
        headers = _HEADERS.parsebytes(data or b"")
        out.append(
            {
                "id": sighting.id,
                "from": str(headers.get("From", "") or "")[:300],
                "subject": str(headers.get("Subject", "") or "(no subject)")[:300],
                "date": minutes(received),
                "why": _verdict(sighting.auth_results),
            }
        )
    return out


def _verdict(results: str | None) -> str:
    """The sender checks' results in short (spf=..., dkim=..., dmarc=...)."""
    if not results:
        return "its sender could not be verified"
    words = [
        w.strip(";") for w in results.split() if w.split("=", 1)[0] in ("spf", "dkim", "dmarc")
    ]
    return " ".join(words) or results[:200]


def _address_of(session: Session, reader: Reader, message_id: int, address: str) -> str:
    """`address`, if it is one of the reader's dropbox message's addresses."""
    if not 0 < message_id < 2**63:
        raise NotFound(f"no message {message_id}")
    mail = session.scalar(select(Message).where(Message.id == message_id, visible(reader)))
    if mail is None:
        raise NotFound(f"no message {message_id}")
    known = set(
        session.scalars(
            select(MessageAddress.address).where(MessageAddress.message_id == message_id)
        )
    )
    address = address.strip()
    if address not in known:
        raise InputError("address", "choose one of the message's addresses")
    return address
