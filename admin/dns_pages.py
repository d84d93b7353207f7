"""DNS setup (admins): the sending domains with their last check, and per domain the
records to publish (host, type, value, a copy button, what DNS holds now), the
findings of the last check with what to change, "Check now", and the zone file.

    GET  /dns                       the domains, the dropbox's MX, add a domain
    POST /dns/domains               add one (its DKIM key is made if it has none)
    GET  /dns/{domain}              its records and its last check
    POST /dns/{domain}/check        check now
    GET  /dns/{domain}/zone         the records as a zone file, to download
    POST /dns/{domain}/remove       no longer checked (its DKIM keys stay)
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from admin.admin_pages import admin_visit
from admin.page_kit import (
    HEADERS,
    STALE_FORM,
    Visit,
    back,
    config_of,
    db_of,
    form_of,
    minutes,
    page,
)
from gateway import dmarc_reports
from gateway.errors import GatewayError, NotFound
from gateway.models import Account
from gateway.resolver import Resolver
from gateway.vault import Vault
from outbound import dns_checks
from outbound.sending_domains import (
    add_domain,
    check,
    get_domain,
    list_domains,
    mx_record,
    records,
    remove_domain,
    summary,
    zone_file,
)

router = APIRouter(include_in_schema=False)
DONE = {
    "added": "Domain added, with its DKIM key: publish the records below, then Check now.",
    "checked": "Checked just now.",
    "removed": "Domain removed: it is no longer checked. Its DKIM keys stay.",
    "stale": STALE_FORM,
}
PERIODS = (7, 30, 90)  # days of DMARC reports the page sums
BADGES = {
    "pass": ("All good", "live"),
    "warn": ("Check the advice", "syncing"),
    "fail": ("Needs fixing", "attention"),
    "unknown": ("DNS did not answer", "syncing"),
    "unchecked": ("Not checked yet", "syncing"),
}


@router.get("/dns")
async def dns(request: Request, done: str = "") -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    return await _list_page(request, here, notice=DONE.get(done, ""))


async def _list_page(request: Request, here: Visit, status: int = 200, **extra: Any) -> Response:
    config = config_of(request)

    def work() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        with db_of(request).read() as session:
            rows = [_badged(summary(d)) for d in list_domains(session, here.person.account_id)]
        resolver = Resolver(config.dns)
        mx = mx_record(config, resolver).as_dict()
        return rows, mx, dns_checks.check_mx(config, resolver).as_dict()

    rows, mx, mx_check = await asyncio.to_thread(work)
    return await page(
        request, here, "dns.html", status, domains=rows, mx=mx, mx_check=mx_check, **extra
    )


@router.post("/dns/domains")
async def add(request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return back("/dns", "stale")
    vault = Vault.load(config_of(request).secret_key_file)
    wanted = fields.get("domain", "").strip()

    def work() -> str:
        with db_of(request).session() as session:
            account = session.get_one(Account, here.person.account_id)
            return add_domain(session, vault, account, wanted).domain

    try:
        name = await asyncio.to_thread(work)
    except GatewayError as exc:
        return await _list_page(request, here, 422, error=str(exc), typed=wanted)
    return back(f"/dns/{name}", "added")


@router.get("/dns/{domain}")
async def domain_page(domain: str, request: Request, done: str = "", days: int = 30) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    config = config_of(request)

    def work() -> dict[str, Any] | None:
        resolver = Resolver(config.dns)
        with db_of(request).read() as session:
            try:
                row = get_domain(session, here.person.account_id, domain)
            except (NotFound, GatewayError):
                return None
            found = records(session, config, resolver, row)
            reports = dmarc_reports.summary(session, here.person.account_id, row.domain, period)
            return {
                **_badged(summary(row)),
                "records": [r.as_dict() for r in found],
                "reports": reports,
            }

    period = days if days in PERIODS else 30
    card = await asyncio.to_thread(work)
    if card is None:
        return await page(request, here, "not_found.html", 404, what="sending domain")
    return await page(
        request,
        here,
        "dns_domain.html",
        d=card,
        periods=PERIODS,
        period=period,
        reports_to=f"{config.dns_checks.dmarc_reports_local}@{config.dropbox.domain}",
        notice=DONE.get(done, ""),
    )


@router.post("/dns/{domain}/check")
async def check_now(domain: str, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back(f"/dns/{domain}", "stale")
    config = config_of(request)
    vault = Vault.load(config.secret_key_file)
    try:
        done = await asyncio.to_thread(
            check, db_of(request), config, vault, here.person.account_id, domain
        )
    except GatewayError:
        return await page(request, here, "not_found.html", 404, what="sending domain")
    return back(f"/dns/{done.domain}", "checked")


@router.get("/dns/{domain}/zone")
async def zone(domain: str, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    config = config_of(request)

    def work() -> tuple[str, str] | None:
        resolver = Resolver(config.dns)
        with db_of(request).read() as session:
            try:
                row = get_domain(session, here.person.account_id, domain)
            except GatewayError:
                return None
            found = records(session, config, resolver, row)
            return row.domain, zone_file(found)

    made = await asyncio.to_thread(work)
    if made is None:
        return await page(request, here, "not_found.html", 404, what="sending domain")
    name, text = made
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{name}.zone"'}
    return PlainTextResponse(text, headers=headers)


@router.post("/dns/{domain}/remove")
async def remove(domain: str, request: Request) -> Response:
    here = await admin_visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/dns", "stale")

    def work() -> None:
        with db_of(request).session() as session:
            remove_domain(session, here.person.account_id, domain)

    try:
        await asyncio.to_thread(work)
    except GatewayError:
        return await page(request, here, "not_found.html", 404, what="sending domain")
    return back("/dns", "removed")


def _badged(row: dict[str, Any]) -> dict[str, Any]:
    words, style = BADGES.get(row["status"], BADGES["unchecked"])
    checked = minutes(row["checked_at"], "never")
    return {**row, "badge": words, "style": style, "last_checked": checked}
