"""Who is asking: the Principal behind a request, from its bearer token or its
signed-in session.

A user's token (`gateway user token`) acts as that user, as a member: it sees only
their own data, and may only send (scope send). The account's token (`gateway
token`) acts for the whole account with the scopes it was given: read, write,
send, admin. A person signed in to the pages acts by their role: an admin with
every scope over the whole account, a member with read, write and send over their
own data (the contacts are the account's, shared). Every query of the API is scoped
to `principal.account_id` and, for a member, to `principal.user_id`.

A call with the session cookie that changes something (any method but GET, HEAD
and OPTIONS) must carry the page's CSRF token in X-CSRF-Token; a session whose
one-time password has not been changed yet may do nothing but change it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from admin.session_cookie import CSRF_HEADER, SESSION, Keys, csrf_ok, session_token
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Forbidden, NotSignedIn
from gateway.tokens import SCOPES, grant_for_token, note_use
from gateway.web_sessions import SignedIn, signed_in, touch_session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MEMBER_SCOPES = frozenset({"read", "write", "send"})


@dataclass(frozen=True)
class Principal:
    account_id: int
    user_id: int | None  # None: the whole account (the account's token, an admin)
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
    """The Principal of the request's bearer token or session (401 without either)."""
    db: Database = request.app.state.db
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await asyncio.to_thread(_principal, db, token.strip())
    keys: Keys | None = request.app.state.keys() if SESSION in request.cookies else None
    session_id = session_token(request, keys) if keys is not None else None
    if keys is None or session_id is None:
        raise NotSignedIn("send a token: Authorization: Bearer gwt_..., or sign in at /sign-in")
    person = await person_of(request, session_id)
    if person is None:
        raise NotSignedIn("the session has ended: sign in again at /sign-in")
    if person.must_change_password:
        raise Forbidden("change the one-time password first, at /account/password")
    if request.method not in SAFE_METHODS and not csrf_ok(
        keys, session_id, request.headers.get(CSRF_HEADER)
    ):
        raise Forbidden("send the page's CSRF token in X-CSRF-Token")
    return of_person(person)


async def person_of(request: Request, session_id: str) -> SignedIn | None:
    """The person signed in with `session_id`, if that session is live."""
    db: Database = request.app.state.db
    config: Config = request.app.state.config

    def look() -> SignedIn | None:
        with db.read() as session:
            person = signed_in(session, config.web, session_id)
        if person is not None and person.seen_due:
            with db.session() as session:
                touch_session(session, person.session_id)
        return person

    return await asyncio.to_thread(look)


def of_person(person: SignedIn) -> Principal:
    if person.is_admin:
        return Principal(person.account_id, None, frozenset(SCOPES))
    return Principal(person.account_id, person.user_id, MEMBER_SCOPES)


def _principal(db: Database, token: str) -> Principal:
    # Read only: a write (and, on SQLite, the writers' lock) only when the token's
    # last use is due to be noted, about once a minute.
    with db.read() as session:
        grant = grant_for_token(session, token, note=False)
    if grant is None:
        raise NotSignedIn("the token is unknown or was revoked")
    if not grant.noted:
        with db.session() as session:
            note_use(session, grant.token_id)
    return Principal(grant.account_id, grant.user_id, grant.scopes)


def scoped(scope: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the request's Principal, which must have `scope`."""

    async def dependency(request: Request) -> Principal:
        who = await principal(request)
        who.require(scope)
        return who

    return dependency
