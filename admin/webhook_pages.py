"""An admin's Webhooks page: the account's endpoints (add one: its secret is shown
once; send a test event; rotate the secret; remove), and each endpoint's delivery
log with Retry. The same rules as `gateway webhook` and /api/v1/webhooks
(gateway.webhooks): URLs to private networks are refused unless allowed."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from admin.admin_pages import admin_visit, in_transaction
from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, page
from gateway.errors import Conflict, InputError, NotFound
from gateway.vault import Vault
from gateway.webhooks import (
    EVENT_TYPES,
    add_endpoint,
    deliveries_of,
    get_endpoint,
    list_endpoints,
    remove_endpoint,
    retry_delivery,
    rotate_secret,
    send_test,
)

router = APIRouter(include_in_schema=False)
DONE = {
    "tested": "A webhook.test event is on its way to the endpoint: see its delivery log.",
    "removed": "Endpoint removed: nothing more is sent to it.",
    "retried": "The delivery is due again now.",
    "stale": STALE_FORM,
}


@router.get("/webhooks")
async def webhooks(request: Request, done: str = "") -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    return await _list_page(request, here, notice=DONE.get(done, ""))


async def _list_page(request: Request, here: Visit, status: int = 200, **extra: Any) -> Response:
    def work() -> list[dict[str, Any]]:
        with db_of(request).read() as session:
            return [
                {
                    "id": e.id,
                    "url": e.url,
                    "types": ", ".join(e.event_types) or "every event",
                    "enabled": e.enabled,
                    "disabled_reason": e.disabled_reason,
                }
                for e in list_endpoints(session, here.person.account_id)
            ]

    rows = await asyncio.to_thread(work)
    return await page(
        request,
        here,
        "webhooks.html",
        status,
        endpoints=rows,
        types=[t for t in EVENT_TYPES if t != "webhook.test"],
        **extra,
    )


@router.post("/webhooks")
async def add(request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    form = await request.form()
    fields = await form_of(request, here)
    if fields is None:
        return back("/webhooks", "stale")
    config = config_of(request)
    wanted = [str(v) for v in form.getlist("event")]

    def work(session: Session) -> str:
        vault = Vault.load(config.secret_key_file)
        url = fields.get("url", "").strip()
        _, secret = add_endpoint(session, config, vault, here.person.account_id, url, wanted)
        return secret

    try:
        secret = await asyncio.to_thread(in_transaction, request, work)
    except InputError as exc:
        return await _list_page(request, here, 422, error=f"{exc.reason}.")
    return await _list_page(request, here, shown=secret)


@router.get("/webhooks/{endpoint_id}")
async def log(endpoint_id: int, request: Request, done: str = "") -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    return await _log_page(request, here, endpoint_id, notice=DONE.get(done, ""))


async def _log_page(
    request: Request, here: Visit, endpoint_id: int, status: int = 200, **extra: Any
) -> Response:
    def work() -> dict[str, Any] | None:
        with db_of(request).read() as session:
            try:
                endpoint = get_endpoint(session, here.person.account_id, endpoint_id)
            except NotFound:
                return None
            rows = [
                {
                    "id": d.id,
                    "event": f"evt_{d.event_id}",
                    "type": d.event_type,
                    "state": d.state,
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                    "last_error": d.last_error or "",
                    "when": d.updated_at.isoformat()[:19].replace("T", " "),
                }
                for d in deliveries_of(session, endpoint, 100)
            ]
            return {"id": endpoint.id, "url": endpoint.url, "deliveries": rows}

    found = await asyncio.to_thread(work) if 0 < endpoint_id < 2**63 else None
    if found is None:
        return await page(request, here, "not_found.html", 404, what="webhook endpoint")
    return await page(request, here, "webhook_log.html", status, endpoint=found, **extra)


@router.post("/webhooks/{endpoint_id}/{action}")
async def act(endpoint_id: int, action: str, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/webhooks", "stale")
    config = config_of(request)

    def work(session: Session) -> str | None:
        endpoint = get_endpoint(session, here.person.account_id, endpoint_id)
        if action == "test":
            send_test(session, endpoint)
        elif action == "rotate":
            return rotate_secret(session, Vault.load(config.secret_key_file), endpoint)
        elif action == "remove":
            remove_endpoint(session, endpoint)
        else:
            raise NotFound(action)
        return None

    if action not in ("test", "rotate", "remove") or not 0 < endpoint_id < 2**63:
        return await page(request, here, "not_found.html", 404, what="webhook endpoint")
    try:
        secret = await asyncio.to_thread(in_transaction, request, work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="webhook endpoint")
    if action == "test":
        return back(f"/webhooks/{endpoint_id}", "tested")
    if action == "remove":
        return back("/webhooks", "removed")
    return await _list_page(request, here, shown=secret, rotated=True)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry")
async def retry(endpoint_id: int, delivery_id: int, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back(f"/webhooks/{endpoint_id}", "stale")

    def work(session: Session) -> None:
        retry_delivery(session, here.person.account_id, delivery_id)

    try:
        await asyncio.to_thread(in_transaction, request, work)
    except NotFound:
        return await page(request, here, "not_found.html", 404, what="delivery")
    except Conflict as exc:
        return await _log_page(request, here, endpoint_id, 409, error=f"{exc}.")
    return back(f"/webhooks/{endpoint_id}", "retried")
