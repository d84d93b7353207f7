"""What every page shares: the templates, the security headers, who is signed in,
the CSRF check of a form, and the layout's data (navigation, the reconnect banner).

A page that needs a person gets `Visit` from `visit(request)`, or a redirect: to
/sign-in?next=<page> when signed out, to /account/password while the one-time
password is not changed yet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from admin.auth import Principal, of_person, person_of
from admin.session_cookie import CSRF_FIELD, Keys, csrf_ok, csrf_token, session_token
from gateway.config import Config
from gateway.db import Database
from gateway.models import Mailbox, MailboxState
from gateway.web_sessions import SignedIn
from outbound.sending_domains import broken

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STALE_FORM = "The form had expired. It is fresh again: please send it once more."
# Pages are never framed, cached or given scripts or styles from elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The navigation: (path, label, admins only). Pages are added here as they are built.
NAVIGATION = (
    ("/inbox", "Inbox", False),
    ("/contacts", "Contacts", False),
    ("/meetings", "Meetings", False),
    ("/mailboxes", "Mailboxes", False),
    ("/settings", "Email settings", False),
    ("/users", "Users", True),
    ("/dns", "DNS setup", True),
    ("/tokens", "API tokens", True),
    ("/webhooks", "Webhooks", True),
)


@dataclass(frozen=True)
class Visit:
    """A signed-in person on a page: their session id (the CSRF seed) and who they are."""

    token: str
    person: SignedIn

    @property
    def principal(self) -> Principal:
        return of_person(self.person)


def minutes(when: datetime | str | None, missing: str = "") -> str:
    """A time as the pages show it, to the minute ("2026-12-05 16:20"; UTC)."""
    if when is None or when == "":
        return missing
    text = when.isoformat() if isinstance(when, datetime) else when
    return text[:16].replace("T", " ")


def keys(request: Request) -> Keys:
    found: Keys = request.app.state.keys()
    return found


def db_of(request: Request) -> Database:
    found: Database = request.app.state.db
    return found


def config_of(request: Request) -> Config:
    found: Config = request.app.state.config
    return found


def render(
    request: Request,
    name: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    base: dict[str, Any] = {
        "person": None,
        "csrf": "",
        "notice": "",
        "error": "",
        "nav": [],
        "broken": [],
        "dns_broken": [],
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status)
    response.headers.update({**HEADERS, **(headers or {})})
    return response


async def page(
    request: Request, visit: Visit, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """A signed-in page: the layout's navigation and reconnect banner included."""
    person = visit.person
    nav = [
        {"path": path, "label": label, "here": request.url.path.startswith(path)}
        for path, label, admin in NAVIGATION
        if person.is_admin or not admin
    ]
    broken = await asyncio.to_thread(_needing_reconnect, db_of(request), person.user_id)
    dns_broken: list[str] = []
    if person.is_admin:
        dns_broken = await asyncio.to_thread(_broken_domains, db_of(request), person.account_id)
    return render(
        request,
        name,
        status,
        person=person,
        csrf=csrf_token(keys(request), visit.token),
        nav=nav,
        broken=broken,
        dns_broken=dns_broken,
        **context,
    )


def _broken_domains(db: Database, account_id: int) -> list[str]:
    """The account's sending domains whose DNS checks keep failing (admins' banner)."""
    with db.read() as session:
        return broken(session, account_id)


def _needing_reconnect(db: Database, user_id: int) -> list[dict[str, Any]]:
    """The person's own mailboxes that need reconnecting (the banner on every page)."""
    with db.read() as session:
        rows = session.execute(
            select(Mailbox.id, Mailbox.email).where(
                Mailbox.user_id == user_id,
                Mailbox.state == MailboxState.RECONNECT_REQUIRED.value,
            )
        ).all()
    return [{"id": r.id, "email": r.email} for r in rows]


async def current(request: Request) -> Visit | None:
    token = session_token(request, keys(request))
    if token is None:
        return None
    person = await person_of(request, token)
    return None if person is None else Visit(token, person)


async def visit(request: Request) -> Visit | RedirectResponse:
    """The signed-in person, or where to send the visitor instead."""
    found = await current(request)
    if found is None:
        return to_sign_in(request)
    if found.person.must_change_password:
        return RedirectResponse("/account/password", status_code=303)
    return found


def to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(here, safe='/')}", status_code=303)


async def form_of(request: Request, visit: Visit) -> dict[str, str] | None:
    """The posted form's fields, or None when its CSRF token is not this session's."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items()}
    if not csrf_ok(keys(request), visit.token, fields.get(CSRF_FIELD)):
        return None
    return fields


def back(path: str, done: str) -> RedirectResponse:
    """After a form: to `path` with `done`, a code the page turns into its own words
    (never text from the URL: a link cannot make a page say something)."""
    return RedirectResponse(f"{path}?done={quote(done)}", status_code=303)
