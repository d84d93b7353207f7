"""HTTP problems (RFC 9457): the one place where errors become HTTP responses.

Handlers raise the gateway's own errors (gateway.errors); `problem_for()` chooses
the status for each class, and the app answers every error, its own or the
framework's (404, 405, a request body that does not validate) or one nobody
expected (500, logged), as application/problem+json with a status, a title and a
detail a person can act on.

    NotSignedIn 401 | Forbidden 403 | NotFound 404 | Conflict 409
    TooManyAttempts 429 | MailboxError 422 with its `reason`
    InvalidCursor 400 | UnsupportedMedia 415 | InputError 422 (with the field at fault
    named; CsvImportError with every row at fault)
    MailRejected: by its SMTP status (from_reply) | Unavailable, database away 503
    ConfigError and anything else 500
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import (
    Conflict,
    CsvImportError,
    Forbidden,
    GatewayError,
    InputError,
    InvalidCursor,
    InvalidFields,
    MailRejected,
    NotFound,
    NotSignedIn,
    Reply,
    TooManyAttempts,
    Unavailable,
    UnsupportedMedia,
)
from gateway.imap.connection import MailboxError

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
_STATUS: tuple[tuple[type[GatewayError], int, str], ...] = (
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (UnsupportedMedia, 415, "unsupported-media"),
    (Unavailable, 503, "unavailable"),
)


# Each problem's `type`: stable, described at GET /api/v1/problems.
TYPES = {
    "not-signed-in": "No token, or one that is unknown or revoked (401).",
    "forbidden": "The token lacks the scope this needs, or it is not the user's (403).",
    "not-found": "No such thing in this account, or no such route (404).",
    "method-not-allowed": "The route does not take this method (405).",
    "conflict": "It clashes with what is stored, or with another request (409).",
    "too-big": "The message is over [submission] max_message_size (413).",
    "unsupported-media": "A request body of a kind this endpoint does not take (415).",
    "invalid-value": "A value that cannot be used; `errors` names the field (422).",
    "invalid-request": "Fields that do not validate; `errors` names each (422).",
    "invalid-rows": "Rows imported all or none; `errors` names each row at fault (422).",
    "invalid-cursor": "A page cursor this API did not give, or gave for another query (400).",
    "mail-refused": "The message is refused as the SMTP side would refuse it (403, 422).",
    "rate-limited": "Over a sending limit: Retry-After says when to try again (429).",
    "too-many-sign-ins": "Sign-in paused after failures: Retry-After says when (429).",
    "mailbox-refused": (
        "The mailbox's server refused or could not be reached; `step` says where "
        "(imap_connect, imap_sign_in, smtp_connect, smtp_sign_in) and `reason` why: "
        "auth, tls, unreachable, timeout, refused, protocol, throttled (422)."
    ),
    "unavailable": "The database does not answer: try again shortly (503).",
    "internal-error": "An unexpected error; it was logged for the operator (500).",
}
_BY_STATUS = {401: "not-signed-in", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}


class ProblemDoc(BaseModel):
    """An RFC 9457 problem, as every error is answered (application/problem+json)."""

    model_config = {"extra": "allow"}
    type: str = Field(description="/api/v1/problems#<name>: stable, described there")
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="each field or row at fault"
    )


_DOC = {MEDIA_TYPE: {"schema": ProblemDoc.model_json_schema()}}
# Documented on every operation of the app (create_app passes it to FastAPI).
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": HTTPStatus(status).phrase, "content": _DOC, "model": ProblemDoc}
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503)
}


class Problem(Exception):
    """An HTTP problem as it is answered (built here, never by a handler)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind or _BY_STATUS.get(status, "internal-error" if status >= 500 else "")
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_for(exc: BaseException) -> Problem:
    """The problem that answers `exc`."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, MailRejected):
        return from_reply(exc.reply)
    if isinstance(exc, MailboxError):  # the mailbox's server said no, or cannot be reached
        return Problem(422, str(exc), kind="mailbox-refused", reason=exc.kind, step=exc.step)
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
        return Problem(429, str(exc), kind="too-many-sign-ins", headers=headers)
    if isinstance(exc, NotSignedIn):
        return Problem(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="gateway"'})
    if isinstance(exc, InvalidFields):
        return Problem(422, str(exc), kind="invalid-request", errors=exc.errors)
    if isinstance(exc, InvalidCursor):
        errors = [{"field": "cursor", "message": exc.reason}]
        return Problem(400, str(exc), kind="invalid-cursor", errors=errors)
    if isinstance(exc, CsvImportError):  # rows imported all or none: every one at fault
        rows = [{"row": row, "message": why} for row, why in exc.rows]
        detail = f"{len(rows)} bad row(s), nothing imported"
        return Problem(422, detail, kind="invalid-rows", errors=rows)
    if isinstance(exc, InputError) and not isinstance(exc, UnsupportedMedia):
        # The field (or file, or header) at fault, named as the caller wrote it.
        errors = [{"field": exc.where, "message": exc.reason}]
        return Problem(422, str(exc), kind="invalid-value", errors=errors)
    for error, status, kind in _STATUS:
        if isinstance(exc, error):
            return Problem(status, str(exc), kind=kind)
    if isinstance(exc, OperationalError):
        return Problem(503, "the database does not answer; try again shortly", kind="unavailable")
    if isinstance(exc, DataError):  # a backstop: a value the database cannot hold (a NUL)
        return Problem(422, "a value the database cannot store (a NUL?)", kind="invalid-value")
    log.error("unexpected error answering a request", exc_info=exc)
    return Problem(500, "an unexpected error; it was logged for the operator")


def from_reply(reply: Reply) -> Problem:
    """The HTTP problem for a refusal the SMTP side would answer with `reply`."""
    if reply.status.startswith("5.7."):
        status = 403
    elif reply.status == "5.3.4":
        status = 413
    elif reply.status == "4.7.1":
        status = 429
    elif reply.code >= 500:
        status = 422
    else:
        status = 503
    headers = {"Retry-After": "3600"} if status == 429 else {}
    kind = {429: "rate-limited", 413: "too-big"}.get(status, "mail-refused")
    if status == 503:
        kind = "unavailable"
    return Problem(status, reply.text, kind=kind, headers=headers, smtp=str(reply))


def response(problem: Problem) -> JSONResponse:
    body = {
        "type": f"/api/v1/problems#{problem.kind}" if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        return response(problem_for(exc))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        return response(Problem(exc.status_code, str(exc.detail), headers=headers))

    async def on_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return response(problem_for(InvalidFields(errors)))

    @app.get("/api/v1/problems", include_in_schema=False)
    def problem_types() -> dict[str, str]:
        """What each problem `type` (/api/v1/problems#<name>) means."""
        return TYPES

    app.add_exception_handler(Problem, on_error)
    app.add_exception_handler(GatewayError, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    # Anything else: Starlette's outermost middleware calls this one, answers with it,
    # then raises the exception again for the server to log.
    app.add_exception_handler(Exception, on_error)
