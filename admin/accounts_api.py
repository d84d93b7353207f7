"""/api/v1/users and /api/v1/settings: the account's users (their dropbox addresses and
sending routes) and its settings.

    GET   /users                           scope read; a user's own token: themselves
    GET   /users/{id}
    POST  /users/{id}/rotate-dropbox       scope write: a new dropbox address (the old
                                           one is refused from then on)
    PUT   /users/{id}/route                scope admin: {"route": mailbox|direct|relay}
    GET   /settings                        scope read
    PATCH /settings                        scope admin: {auto_create_contacts?,
                                           blocked_domains?}
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from admin.auth import Principal, principal, scoped
from admin.pagination import page
from admin.params import ItemId, Limit
from admin.sessions import in_session
from gateway.accounts import domain_list, dropbox_address, new_dropbox_token
from gateway.db import Database
from gateway.errors import NotFound
from gateway.models import Account, User
from outbound.routes import set_route

T = TypeVar("T")
router = APIRouter(prefix="/api/v1", tags=["users and settings"])
READ, WRITE, ADMIN = (Depends(scoped(s)) for s in ("read", "write", "admin"))


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    admin: bool
    addresses: list[str]
    dropbox_address: str
    route: str | None = Field(description="mailbox, direct or relay; none: the default")


class UserPage(BaseModel):
    data: list[UserOut]
    next_cursor: str | None


class RouteIn(BaseModel):
    model_config = {"extra": "forbid"}
    route: Literal["mailbox", "direct", "relay"]


class SettingsOut(BaseModel):
    plan: str
    auto_create_contacts: bool
    blocked_domains: list[str]


class SettingsChange(BaseModel):
    model_config = {"extra": "forbid"}
    auto_create_contacts: bool | None = None
    blocked_domains: list[str] | None = Field(default=None, max_length=1000)


@router.get("/users", response_model=UserPage, summary="The account's users")
async def users(request: Request, limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
    who = await _reader(request)
    query_key = {"account": who.account_id, "list": "users", "member": who.user_id}
    after = request.app.state.cursors().after(cursor, query_key)

    def work(session: Session) -> list[dict[str, Any]]:
        query = select(User).where(User.account_id == who.account_id, User.id > after)
        if who.user_id is not None:
            query = query.where(User.id == who.user_id)
        query = query.options(selectinload(User.addresses)).order_by(User.id).limit(limit + 1)
        return [_user(request, u) for u in session.scalars(query)]

    return page(await in_session(request, work), limit, request.app.state.cursors(), query_key)


@router.get("/users/{user_id}", response_model=UserOut, summary="One user")
async def one_user(user_id: ItemId, request: Request) -> dict[str, Any]:
    who = await _reader(request)
    return await in_session(request, lambda s: _user(request, _get(s, who, user_id)))


@router.post(
    "/users/{user_id}/rotate-dropbox", response_model=UserOut, summary="A new dropbox address"
)
async def rotate(user_id: ItemId, request: Request, who: Principal = WRITE) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        user = _get(session, who, user_id)
        user.dropbox_token = new_dropbox_token()
        return _user(request, user)

    return await in_session(request, work)


@router.put("/users/{user_id}/route", response_model=UserOut, summary="Set the sending route")
async def route(
    user_id: ItemId, body: RouteIn, request: Request, who: Principal = ADMIN
) -> dict[str, Any]:
    email = await in_session(request, lambda s: _get(s, who, user_id).email)
    db: Database = request.app.state.db
    await asyncio.to_thread(set_route, db, request.app.state.config, email, body.route)
    return await in_session(request, lambda s: _user(request, _get(s, who, user_id)))


@router.get("/settings", response_model=SettingsOut, summary="The account's settings")
async def settings(request: Request, who: Principal = READ) -> dict[str, Any]:
    return await in_session(request, lambda s: _settings(s.get_one(Account, who.account_id)))


@router.patch("/settings", response_model=SettingsOut, summary="Change the account's settings")
async def change_settings(
    body: SettingsChange, request: Request, who: Principal = ADMIN
) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        account = session.get_one(Account, who.account_id)
        if body.auto_create_contacts is not None:
            account.auto_create_contacts = body.auto_create_contacts
        if body.blocked_domains is not None:
            account.blocked_domains = domain_list(body.blocked_domains)
        return _settings(account)

    return await in_session(request, work)


async def _reader(request: Request) -> Principal:
    who = await principal(request)
    if who.whole_account:  # a user's own token sees themselves
        who.require("read")
    return who


def _get(session: Session, who: Principal, user_id: int) -> User:
    user = session.scalar(
        select(User)
        .where(User.id == user_id, User.account_id == who.account_id)
        .options(selectinload(User.addresses))
    )
    if user is None or (who.user_id is not None and user.id != who.user_id):
        raise NotFound(f"no user {user_id}")
    return user


def _user(request: Request, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "admin": user.is_admin,
        "addresses": [a.address for a in user.addresses],
        "dropbox_address": dropbox_address(request.app.state.config, user),
        "route": user.route,
    }


def _settings(account: Account) -> dict[str, Any]:
    return {
        "plan": account.plan,
        "auto_create_contacts": account.auto_create_contacts,
        "blocked_domains": list(account.blocked_domains or []),
    }
