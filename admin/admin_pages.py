"""An admin's pages: Users (add one, make admin, reset a password) and API tokens
(create one, shown once; revoke; when each was last used). A member gets a 403
page. A password or token made here is shown once, on the answer to the form that
made it, and never again."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, minutes, page, visit
from gateway.accounts import add_user, list_users, new_password, set_password
from gateway.errors import Conflict, InputError, NotFound
from gateway.models import Account, User
from gateway.tokens import SCOPES, create_account_token, list_account_tokens, revoke_account_token
from gateway.web_sessions import end_sessions_of

router = APIRouter(include_in_schema=False)
DONE = {
    "revoked": "Token revoked: it is refused from the next request on.",
    "admin": "Role changed.",
    "stale": STALE_FORM,
}


async def admin_visit(request: Request) -> Visit | Response:
    """The signed-in admin, or the page to answer instead (a member gets 403)."""
    here = await visit(request)
    if isinstance(here, Visit) and not here.person.is_admin:
        return await page(request, here, "forbidden.html", 403)
    return here


# -- users -------------------------------------------------------------------------


@router.get("/users")
async def users(request: Request, done: str = "") -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    return await _users_page(request, here, notice=DONE.get(done, ""))


async def _users_page(request: Request, here: Visit, status: int = 200, **extra: Any) -> Response:
    def work() -> list[dict[str, Any]]:
        with db_of(request).read() as session:
            account = session.get_one(Account, here.person.account_id)
            return [
                {
                    "id": u.id,
                    "email": u.email,
                    "name": u.name,
                    "admin": u.is_admin,
                    "password": "to change at next sign-in"
                    if u.password_must_change
                    else ("set" if u.password_hash else "none (cannot sign in)"),
                }
                for u in list_users(session, account)
            ]

    rows = await asyncio.to_thread(work)
    return await page(request, here, "users.html", status, users=rows, **extra)


@router.post("/users")
async def add(request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back("/users", "stale")
    config = config_of(request)

    def work() -> tuple[str, str]:
        with db_of(request).session() as session:
            account = session.get_one(Account, here.person.account_id)
            user, _ = add_user(
                session, config, account, fields.get("email", ""), fields.get("name", "")
            )
            user.is_admin = fields.get("admin") == "on"
            password = new_password()
            set_password(session, config, user.email, password, must_change=True)
            return user.email, password

    try:
        email, password = await asyncio.to_thread(work)
    except (InputError, Conflict) as exc:
        return await _users_page(request, here, 422, error=str(exc))
    return await _users_page(request, here, shown={"email": email, "password": password})


@router.post("/users/{user_id}/password")
async def reset(user_id: int, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/users", "stale")
    config = config_of(request)

    def work(session: Session) -> tuple[str, str]:
        user = _user(session, here, user_id)
        password = new_password()
        set_password(session, config, user.email, password, must_change=True)
        end_sessions_of(session, user.id)  # signed in elsewhere: signed out now
        return user.email, password

    try:
        email, password = await asyncio.to_thread(in_transaction, request, work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="user")
    return await _users_page(request, here, shown={"email": email, "password": password})


@router.post("/users/{user_id}/admin")
async def make_admin(user_id: int, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back("/users", "stale")
    if user_id == here.person.user_id:
        return await _users_page(request, here, 422, error="You cannot change your own role.")

    def work(session: Session) -> None:
        _user(session, here, user_id).is_admin = fields.get("admin") == "on"

    try:
        await asyncio.to_thread(in_transaction, request, work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="user")
    return back("/users", "admin")


def _user(session: Session, here: Visit, user_id: int) -> User:
    user = session.get(User, user_id) if 0 < user_id < 2**63 else None
    if user is None or user.account_id != here.person.account_id:
        raise NotFound(f"no user {user_id}")
    return user


def in_transaction(request: Request, work: Any) -> Any:
    """`work(session)` in one write transaction (called in a worker thread)."""
    with db_of(request).session() as session:
        return work(session)


# -- API tokens --------------------------------------------------------------------


@router.get("/tokens")
async def tokens(request: Request, done: str = "") -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    return await _tokens_page(request, here, notice=DONE.get(done, ""))


async def _tokens_page(request: Request, here: Visit, status: int = 200, **extra: Any) -> Response:
    def work() -> list[dict[str, Any]]:
        with db_of(request).read() as session:
            return [
                {
                    "id": t.public_id,
                    "label": t.label,
                    "scopes": t.scopes.replace(",", ", "),
                    "created": minutes(t.created_at),
                    "last_used": minutes(t.last_used_at, "never"),
                }
                for t in list_account_tokens(session, here.person.account_id)
            ]

    rows = await asyncio.to_thread(work)
    return await page(request, here, "tokens.html", status, tokens=rows, scopes=SCOPES, **extra)


@router.post("/tokens")
async def create(request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    form = await request.form()
    fields = await form_of(request, here)
    if fields is None:
        return back("/tokens", "stale")
    wanted = [str(v) for v in form.getlist("scope")]
    label = fields.get("label", "")[:200]

    def work(session: Session) -> str:
        return create_account_token(session, here.person.account_id, wanted, label).token

    try:
        token = await asyncio.to_thread(in_transaction, request, work)
    except InputError:
        return await _tokens_page(request, here, 422, error="Choose at least one scope.")
    return await _tokens_page(request, here, shown=token)


@router.post("/tokens/{public_id}/revoke")
async def revoke(public_id: str, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/tokens", "stale")

    def work(session: Session) -> None:
        revoke_account_token(session, here.person.account_id, public_id)

    try:
        await asyncio.to_thread(in_transaction, request, work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="token")
    return back("/tokens", "revoked")
