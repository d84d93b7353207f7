"""Email settings: the person's BCC dropbox address (copy it, or make a new one: the
old one stops working), and the account's contact settings (auto-create contacts,
blocked domains), which an admin changes and a member sees; and where the person's
mail from the CRM leaves ("Change email server": their mailbox's SMTP server, the
gateway's own delivery, or the configured relay), which they choose themselves."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, page, visit
from gateway.accounts import domain_list, dropbox_address, new_dropbox_token
from gateway.errors import InputError
from gateway.models import Account, User
from outbound.routes import ROUTES as CHOICES
from outbound.routes import sending_mailbox

router = APIRouter(include_in_schema=False)
DONE = {
    "rotated": "Your new dropbox address works now; the old one is refused from now on.",
    "saved": "Contact settings saved.",
    "route": "Email server changed: your next mail from the CRM leaves this way.",
    "stale": STALE_FORM,
}
ROUTES = {
    None: "the account's default ([outbound] default_route)",
    "mailbox": "your mailbox's own SMTP server",
    "direct": "the gateway's own delivery (direct to each recipient's MX)",
    "relay": "the configured relay",
}


@router.get("/settings")
async def settings(request: Request, done: str = "") -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    return await _page(request, here, notice=DONE.get(done, ""))


async def _page(request: Request, here: Visit, status: int = 200, **extra: Any) -> Response:
    config = config_of(request)

    def work() -> dict[str, Any]:
        with db_of(request).read() as session:
            user = session.get_one(User, here.person.user_id)
            account = session.get_one(Account, here.person.account_id)
            return {
                "dropbox": dropbox_address(config, user),
                "route": ROUTES.get(user.route, user.route or ""),
                "route_key": user.route or "",
                "can_mailbox": sending_mailbox(session, user.id) is not None,
                "can_relay": bool(config.outbound.relay_url),
                "default_route": config.outbound.default_route,
                "auto_create": account.auto_create_contacts,
                "blocked": "\n".join(account.blocked_domains),
            }

    facts = await asyncio.to_thread(work)
    return await page(request, here, "settings.html", status, **facts, **extra)


@router.post("/settings/dropbox")
async def rotate(request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/settings", "stale")

    def work() -> None:
        with db_of(request).session() as session:
            session.get_one(User, here.person.user_id).dropbox_token = new_dropbox_token()

    await asyncio.to_thread(work)
    return back("/settings", "rotated")


@router.post("/settings/contacts")
async def contacts(request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back("/settings", "stale")
    if not here.person.is_admin:
        return await _page(request, here, 403, error="Only an admin changes these.")
    try:
        blocked = domain_list(fields.get("blocked_domains", "").split())
    except InputError as exc:
        return await _page(request, here, 422, error=f"Blocked domains: {exc.reason}.")

    def work() -> None:
        with db_of(request).session() as session:
            account = session.get_one(Account, here.person.account_id)
            account.auto_create_contacts = fields.get("auto_create") == "on"
            account.blocked_domains = blocked

    await asyncio.to_thread(work)
    return back("/settings", "saved")


@router.post("/settings/route")
async def route(request: Request) -> Response:
    """The person's own sending route; empty: the account's default."""
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back("/settings", "stale")
    config = config_of(request)
    wanted = fields.get("route", "")

    def work() -> str:
        with db_of(request).session() as session:
            user = session.get_one(User, here.person.user_id)
            if wanted and wanted not in CHOICES:
                return "Choose one of the email servers shown."
            if wanted == "relay" and not config.outbound.relay_url:
                return "No relay is configured ([outbound] relay_url): choose another."
            if wanted == "mailbox" and sending_mailbox(session, user.id) is None:
                return "Connect a mailbox with an SMTP server first, then choose it."
            user.route = wanted or None
            return ""

    refusal = await asyncio.to_thread(work)
    if refusal:
        return await _page(request, here, 422, error=refusal)
    return back("/settings", "route")
