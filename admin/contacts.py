"""/api/v1/contacts: the account's contacts (scope read to see, write to change).

    GET    /contacts?address=&limit=&cursor=   list (by id), or the one with an address
    GET    /contacts/{id}
    POST   /contacts                           {name, emails}: 201, its past mail attached
    PATCH  /contacts/{id}                      {name?, emails?}
    DELETE /contacts/{id}                      204; its mail stays stored
    POST   /contacts/import                    {contacts: [{name, emails}]}, up to 10,000:
                                               all or none, every row at fault named

Contacts belong to the account: a member (a user's token) has no access to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from admin.auth import Principal, scoped
from admin.pagination import check_limit, page
from admin.params import ItemId
from admin.sessions import in_session
from gateway.addresses import parse_one
from gateway.contact_import import Row, import_rows
from gateway.contacts import add_contact, delete_contact, get_contact, update_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.errors import Forbidden, NotFound
from gateway.models import Account, Contact, ContactEmail

T = TypeVar("T")
router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])
MAX_IMPORT = 10_000


class ContactOut(BaseModel):
    id: int
    name: str
    emails: list[str]
    source: str = Field(description="manual, import or auto (created from mail)")
    created_at: str


class ContactPage(BaseModel):
    data: list[ContactOut]
    next_cursor: str | None


class ContactIn(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(default="", max_length=200)
    emails: list[str] = Field(min_length=1, max_length=50)


class ContactChange(BaseModel):
    model_config = {"extra": "forbid"}
    name: str | None = Field(default=None, max_length=200)
    emails: list[str] | None = Field(default=None, min_length=1, max_length=50)


class ImportIn(BaseModel):
    model_config = {"extra": "forbid"}
    contacts: list[ContactIn] = Field(max_length=MAX_IMPORT)


class ImportOut(BaseModel):
    created: int
    updated: int
    unchanged: int


READ, WRITE = Depends(scoped("read")), Depends(scoped("write"))


@router.get("", response_model=ContactPage, summary="List contacts, or find one by address")
async def list_contacts(
    request: Request,
    address: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    who: Principal = READ,
) -> dict[str, Any]:
    check_limit(limit)
    query = {"account": who.account_id, "address": address}
    after = request.app.state.cursors().after(cursor, query)
    db: Database = request.app.state.db
    case = request.app.state.config.addresses.local_part_case
    rows = await asyncio.to_thread(_list, db, who.account_id, address, case, after, limit + 1)
    return page(rows, limit, request.app.state.cursors(), query)


@router.get("/{contact_id}", response_model=ContactOut, summary="One contact")
async def one_contact(
    contact_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    return await _in_session(request, lambda s, _: _out(get_contact(s, who.account_id, contact_id)))


@router.post("", status_code=201, response_model=ContactOut, summary="Create a contact")
async def create(body: ContactIn, request: Request, who: Principal = WRITE) -> dict[str, Any]:

    def work(session: Session, directory: AccountDirectory) -> dict[str, Any]:
        contact = add_contact(session, directory, body.emails, body.name, _case(request))
        return _out(get_contact(session, who.account_id, contact.id))

    return await _in_session(request, work, who.account_id)


@router.patch("/{contact_id}", response_model=ContactOut, summary="Rename, or set addresses")
async def change(
    contact_id: ItemId, body: ContactChange, request: Request, who: Principal = WRITE
) -> dict[str, Any]:

    def work(session: Session, directory: AccountDirectory) -> dict[str, Any]:
        contact = get_contact(session, who.account_id, contact_id)
        update_contact(session, directory, contact, _case(request), body.name, body.emails)
        return _out(contact)

    return await _in_session(request, work, who.account_id)


@router.delete("/{contact_id}", status_code=204, summary="Delete a contact (its mail stays)")
async def delete(contact_id: ItemId, request: Request, who: Principal = WRITE) -> Response:
    _account_wide(who)

    def work(session: Session, _: AccountDirectory) -> None:
        delete_contact(session, get_contact(session, who.account_id, contact_id))

    await _in_session(request, work)
    return Response(status_code=204)


@router.post("/import", response_model=ImportOut, summary="Import up to 10,000: all or none")
async def bulk(body: ImportIn, request: Request, who: Principal = WRITE) -> dict[str, Any]:
    _account_wide(who)
    rows = [Row(n, c.emails, c.name) for n, c in enumerate(body.contacts, start=1)]

    def work(session: Session, directory: AccountDirectory) -> dict[str, Any]:
        result = import_rows(session, directory, rows, _case(request), "contacts", unit="row")
        return {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}

    return await _in_session(request, work, who.account_id)


def _account_wide(who: Principal) -> None:
    """Members read, add and change the account's (shared) contacts; deleting and
    importing are an admin's."""
    if not who.whole_account:
        raise Forbidden("deleting and importing contacts is an admin's (or the account's token)")


def _case(request: Request) -> str:
    return str(request.app.state.config.addresses.local_part_case)


async def _in_session(
    request: Request, work: Callable[[Session, Any], T], account_id: int | None = None
) -> T:
    """`work(session, directory)` in one transaction (in_session); the directory of
    `account_id` when it is given."""
    config = request.app.state.config

    def with_directory(session: Session) -> T:
        directory = None
        if account_id is not None:
            account = session.get(Account, account_id)
            if account is None:
                raise NotFound("no such account")
            directory = AccountDirectory.load(session, account, config)
        return work(session, directory)

    return await in_session(request, with_directory)


def _list(
    db: Database, account_id: int, address: str | None, case: str, after: int, limit: int
) -> list[dict[str, Any]]:
    query = (
        select(Contact)
        .where(Contact.account_id == account_id, Contact.id > after)
        .options(selectinload(Contact.emails))
        .order_by(Contact.id)
        .limit(limit)
    )
    if address is not None:
        parsed = parse_one(address, case)
        query = query.where(
            Contact.id.in_(
                select(ContactEmail.contact_id).where(
                    ContactEmail.account_id == account_id,
                    ContactEmail.address == (parsed.normalized if parsed else ""),
                )
            )
        )
    with db.read() as session:
        return [_out(c) for c in session.scalars(query).unique()]


def _out(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "emails": [e.display for e in contact.emails],
        "source": contact.source,
        "created_at": contact.created_at.isoformat(),
    }
