"""Email settings: the person's BCC dropbox address (copy it, or make a new one: the
old one stops working), and the account's contact settings (auto-create contacts,
blocked domains), which an admin changes and a member sees. The sending route is
shown with where it is changed."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, page, visit
from gateway.accounts import domain_list, dropbox_address, new_dropbox_token
from gateway.errors import InputError
from gateway.models import Account, User

router = APIRouter(include_in_schema=False)
DONE = {
    "rotated": "Your new dropbox address works now; the old one is refused from now on.",
    "saved": "Contact settings saved.",
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
