"""Sending domains and their DNS over HTTP (scope `admin`).

GET    /domains                      the domains and their last check
POST   /domains                      add one (its DKIM key is made if it has none)
GET    /domains/{domain}             one, with the records to publish (live "found")
POST   /domains/{domain}/check       check now: each record's finding
DELETE /domains/{domain}             no longer checked (its DKIM keys stay)
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from admin.auth import Principal, scoped
from admin.sessions import in_session
from gateway.models import Account
from gateway.resolver import Resolver
from gateway.vault import Vault
from outbound.sending_domains import (
    add_domain,
    check,
    get_domain,
    list_domains,
    records,
    remove_domain,
    summary,
    with_dropbox,
)

router = APIRouter(prefix="/api/v1", tags=["sending domains"])
ADMIN = Depends(scoped("admin"))


class DomainIn(BaseModel):
    model_config = {"extra": "forbid"}
    domain: str = Field(max_length=253, description="e.g. acme.com")


class FindingOut(BaseModel):
    kind: str = Field(description="spf | dkim | dmarc | mx")
    name: str
    status: str = Field(description="pass | warn | fail | unknown (DNS did not answer)")
    words: str
    fix: str


class RecordOut(BaseModel):
    kind: str = Field(description="spf | dkim | dmarc | dmarc-authorization | mx")
    name: str
    host: str = Field(description="the name relative to its zone (@ for the zone)")
    type: str
    value: str
    strings: list[str] = Field(description="the TXT value in strings of at most 255")
    found: list[str] = Field(description="what DNS holds at that name now")
    notes: list[str]


class DomainOut(BaseModel):
    id: int
    domain: str
    status: str = Field(description="pass | warn | fail | unknown | unchecked")
    checked_at: str | None
    failures: int = Field(description="failed checks in a row")
    checks: list[FindingOut]


class DomainDetail(DomainOut):
    records: list[RecordOut]


class DomainList(BaseModel):
    data: list[DomainOut]


class Checked(BaseModel):
    domain: str
    status: str
    checks: list[FindingOut]


@router.get("/domains", response_model=DomainList, summary="The sending domains")
async def domains(request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    rows = await in_session(
        request, lambda s: [summary(d) for d in list_domains(s, who.account_id)]
    )
    return {"data": rows}


@router.post("/domains", status_code=201, response_model=DomainOut, summary="Add one")
async def add(body: DomainIn, request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    vault: Vault = request.app.state.vault()

    def work(session: Session) -> dict[str, Any]:
        account = session.get_one(Account, who.account_id)
        return summary(add_domain(session, vault, account, body.domain))

    return await in_session(request, work)


@router.get("/domains/{domain}", response_model=DomainDetail, summary="One, with its records")
async def one(domain: str, request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    config = request.app.state.config
    resolver = Resolver(config.dns)

    def work(session: Session) -> dict[str, Any]:
        row = get_domain(session, who.account_id, domain)
        found = records(session, config, resolver, row)
        return {**summary(row), "records": [r.as_dict() for r in found]}

    return await in_session(request, work)


@router.post("/domains/{domain}/check", response_model=Checked, summary="Check it now")
async def check_now(domain: str, request: Request, who: Principal = ADMIN) -> dict[str, Any]:
    config = request.app.state.config
    vault: Vault = request.app.state.vault()
    done = await asyncio.to_thread(
        check, request.app.state.db, config, vault, who.account_id, domain
    )
    findings, status = await asyncio.to_thread(with_dropbox, config, done)
    return {"domain": done.domain, "status": status, "checks": [f.as_dict() for f in findings]}


@router.delete("/domains/{domain}", status_code=204, summary="Stop checking it")
async def remove(domain: str, request: Request, who: Principal = ADMIN) -> Response:
    await in_session(request, lambda s: remove_domain(s, who.account_id, domain))
    return Response(status_code=204)
