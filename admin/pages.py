"""The pages people use, server-rendered (jinja2): sign-in, sign-out, changing
one's password, and the home page the admin pages build on.

Every form carries a CSRF token (admin.session_cookie) and nothing changes on GET.
A page that needs a person sends the signed-out visitor to /sign-in?next=<page>;
a person whose one-time password is not changed yet is sent to /account/password.
Errors are shown on the page, in words, never as problem JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin.page_kit import (
    STALE_FORM,
    Visit,
    config_of,
    current,
    db_of,
    keys,
    page,
    render,
    to_sign_in,
    visit,
)
from admin.session_cookie import (
    CSRF_FIELD,
    PRE,
    clear_session,
    client_ip,
    csrf_ok,
    csrf_token,
    keep_pre,
    pre_seed,
    session_token,
    set_session,
)
from gateway.accounts import MIN_PASSWORD, PASSWORDS, dropbox_address, set_password
from gateway.errors import InputError, TooManyAttempts
from gateway.models import Account, User
from gateway.sign_in import WRONG, sign_in
from gateway.web_sessions import (
    SignedIn,
    end_session,
    end_sessions_of,
    forget_old_sessions,
    open_session,
)

router = APIRouter(include_in_schema=False)


def _local(target: str) -> str:
    """Only a path of this site is a place to go after sign-in (no open redirect)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/"
    return target


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "/", out: str = "") -> Response:
    if await current(request) is not None:
        return RedirectResponse(_local(next), status_code=303)
    return _sign_in_form(request, next=_local(next), notice="You are signed out." if out else "")


def _sign_in_form(
    request: Request, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    seed = pre_seed(request)
    context = {"email": "", "next": "/", **context}
    csrf = csrf_token(keys(request), seed)
    response = render(request, "sign_in.html", status, headers, csrf=csrf, **context)
    keep_pre(response, request, config_of(request), seed)
    return response


@router.post("/sign-in")
async def sign_in_submit(request: Request) -> Response:
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _local(str(form.get("next", "/")))
    if not csrf_ok(keys(request), request.cookies.get(PRE), str(form.get(CSRF_FIELD, ""))):
        return _sign_in_form(request, 403, email=email, next=target, error=STALE_FORM)
    config, db = config_of(request), db_of(request)

    def attempt() -> tuple[str | None, bool]:
        with db.session() as session:
            user = sign_in(session, config, email, password, client_ip(request))
            if user is None:
                return None, False
            forget_old_sessions(session, config.web)
            old = session_token(request, keys(request))
            if old is not None:
                end_session(session, old)  # a new session id at every sign-in
            token = open_session(
                session, user, client_ip(request), request.headers.get("user-agent", "")
            )
            return token, user.password_must_change

    try:
        token, must_change = await asyncio.to_thread(attempt)
    except TooManyAttempts as exc:
        return _sign_in_form(
            request,
            429,
            email=email,
            next=target,
            error=str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        )
    if token is None:
        return _sign_in_form(request, 401, email=email, next=target, error=WRONG)
    response = RedirectResponse("/account/password" if must_change else target, status_code=303)
    set_session(response, request, config, keys(request), token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    form = await request.form()
    token = session_token(request, keys(request))
    if token is not None and not csrf_ok(keys(request), token, str(form.get(CSRF_FIELD, ""))):
        return render(request, "message.html", 403, heading=STALE_FORM, back="/")
    if token is not None:
        db = db_of(request)

        def end() -> None:
            with db.session() as session:
                end_session(session, token)

        await asyncio.to_thread(end)
    response = RedirectResponse("/sign-in?out=1", status_code=303)
    clear_session(response, request, config_of(request))
    return response


@router.get("/account/password")
async def password_page(request: Request) -> Response:
    found = await current(request)
    if found is None:
        return to_sign_in(request)
    return _password_form(request, found.token, found.person)


def _password_form(
    request: Request, token: str, person: SignedIn, status: int = 200, **context: Any
) -> HTMLResponse:
    return render(
        request,
        "password.html",
        status,
        person=person,
        csrf=csrf_token(keys(request), token),
        min_length=MIN_PASSWORD,
        **context,
    )


@router.post("/account/password")
async def password_submit(request: Request) -> Response:
    found = await current(request)
    if found is None:
        return to_sign_in(request)
    token, person = found.token, found.person
    form = await request.form()
    if not csrf_ok(keys(request), token, str(form.get(CSRF_FIELD, ""))):
        return _password_form(request, token, person, 403, error=STALE_FORM)
    old, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    if new != again:
        return _password_form(request, token, person, 422, error="The two new passwords differ.")
    config, db = config_of(request), db_of(request)

    def change() -> str:
        with db.session() as session:
            user = session.get(User, person.user_id)
            assert user is not None and user.password_hash is not None
            try:
                PASSWORDS.verify(user.password_hash, old)
            except (VerificationError, InvalidHashError):
                raise InputError("current", "The current password is not right.") from None
            if new == old:
                raise InputError("new", "The new password must differ from the current one.")
            set_password(session, config, user.email, new)
            end_sessions_of(session, user.id)  # signed in elsewhere: signed out now
            return open_session(
                session, user, client_ip(request), request.headers.get("user-agent", "")
            )

    try:
        fresh = await asyncio.to_thread(change)
    except InputError as exc:
        reason = exc.reason if exc.where != "password" else f"The new password {exc.reason}."
        return _password_form(request, token, person, 422, error=reason)
    response = RedirectResponse("/?changed=1", status_code=303)
    set_session(response, request, config, keys(request), fresh)
    return response


@router.get("/")
async def home(request: Request, changed: str = "") -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    person = here.person
    config, db = config_of(request), db_of(request)

    def facts() -> tuple[str, str]:
        with db.read() as session:
            user = session.get(User, person.user_id)
            account = session.get(Account, person.account_id)
            assert user is not None and account is not None
            return account.name, dropbox_address(config, user)

    account, dropbox = await asyncio.to_thread(facts)
    return await page(
        request,
        here,
        "home.html",
        account=account,
        dropbox=dropbox,
        notice="Your password is changed." if changed else "",
    )


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page says: the same icon."""
    return RedirectResponse("/static/icon.svg", status_code=301)
