"""HTTP problems (RFC 9457): the one place where errors become HTTP responses.

Handlers raise `Problem`; the app answers every error, its own or the
framework's (404, 405, a request body that does not validate), as
application/problem+json with a status, a title and a detail a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import Reply

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


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
    return Problem(status, reply.text, headers=headers, smtp=str(reply))


def response(problem: Problem) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    return JSONResponse(body, problem.status, headers=problem.headers, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return response(exc)

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
        named = ", ".join(e["field"] or "(body)" for e in errors)
        return response(Problem(422, f"invalid request: {named}", errors=errors))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
