"""Who is asking: the Principal behind a request, from its bearer token.

A user's token (`gateway user token`) acts as that user, as a member: it sees only
their own data, and may only send (scope send). The account's token (`gateway
token`) acts for the whole account with the scopes it was given: read, write,
send, admin. Every query of the API is scoped to `principal.account_id` and, for a
member, to `principal.user_id`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from gateway.db import Database
from gateway.errors import Forbidden, NotSignedIn
from gateway.tokens import grant_for_token


@dataclass(frozen=True)
class Principal:
    account_id: int
    user_id: int | None  # None: the account's token (an admin's program)
    scopes: frozenset[str]

    @property
    def whole_account(self) -> bool:
        """True: sees the whole account; False: a member, only their own data."""
        return self.user_id is None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            have = ", ".join(sorted(self.scopes)) or "none"
            raise Forbidden(f"this needs scope {scope}; the token has {have}")


async def principal(request: Request) -> Principal:
    """The Principal of the request's bearer token (401 without a valid one)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotSignedIn("send a token: Authorization: Bearer gwt_...")
    db: Database = request.app.state.db
    return await asyncio.to_thread(_principal, db, token.strip())


def _principal(db: Database, token: str) -> Principal:
    with db.session() as session:
        grant = grant_for_token(session, token)
    if grant is None:
        raise NotSignedIn("the token is unknown or was revoked")
    return Principal(grant.account_id, grant.user_id, grant.scopes)


def scoped(scope: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the request's Principal, which must have `scope`."""

    async def dependency(request: Request) -> Principal:
        who = await principal(request)
        who.require(scope)
        return who

    return dependency
