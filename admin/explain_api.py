"""GET /api/v1/explain?message_id=...&contact=...: why a message is (not) on a contact,
from every trace the gateway recorded of it (gateway.explain). Scope read; a user's
own token sees the traces of their own mail only."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from admin.auth import principal
from gateway.db import Database
from gateway.explain import explain

router = APIRouter(prefix="/api/v1", tags=["explain"])
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"  # no control characters: never a NUL to the database


class FindingOut(BaseModel):
    decision: str
    reason: str
    where: str
    when: str | None
    details: dict[str, Any]


class ExplanationOut(BaseModel):
    message_id: str
    contact: str | None
    answer: str
    findings: list[FindingOut]


@router.get("/explain", response_model=ExplanationOut, summary="Why is this mail (not) here?")
async def why(
    request: Request,
    message_id: Annotated[str, Query(min_length=1, max_length=998, pattern=_PRINTABLE)],
    contact: Annotated[str | None, Query(max_length=320, pattern=_PRINTABLE)] = None,
) -> dict[str, Any]:
    who = await principal(request)
    if who.whole_account:  # a member (a user's token) asks about their own mail only
        who.require("read")
    db: Database = request.app.state.db
    config = request.app.state.config

    def work() -> dict[str, Any]:
        with db.read() as session:
            found = explain(session, config, who.account_id, message_id, contact, who.user_id)
            return found.as_dict()

    return await asyncio.to_thread(work)
