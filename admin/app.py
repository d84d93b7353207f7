"""The web app (FastAPI): built once per process with the database and config it serves.

The REST API under /api/v1 (admin.api, contacts, accounts_api, messages_api,
meetings_api, webhooks_api, explain_api) with its OpenAPI document at
/api/v1/openapi.json and docs at /api/v1/docs; GET /metrics (admin.metrics); GET
/healthz; the pages (admin.pages) and their /static files. Every error of the API is
answered as an HTTP problem (admin.problems); the pages show theirs in words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import text

from admin import (
    accounts_api,
    admin_pages,
    api,
    connect_pages,
    contact_pages,
    contacts,
    dns_pages,
    domains_api,
    explain_api,
    inbox_pages,
    mailbox_pages,
    mailboxes_api,
    meeting_pages,
    meetings_api,
    messages_api,
    metrics,
    pages,
    problems,
    settings_pages,
    unattached_pages,
    webhook_pages,
    webhooks_api,
)
from admin.pagination import Cursors
from admin.session_cookie import Keys
from gateway import __version__
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Unavailable
from gateway.vault import Vault

T = TypeVar("T")


def _once(make: Callable[[], T]) -> Callable[[], T]:
    """`make()` on first use only (the vault needs the secret key file)."""
    made: list[T] = []

    def get() -> T:
        if not made:
            made.append(make())
        return made[0]

    return get


def create_app(db: Database, config: Config, queued: Callable[[], None] = lambda: None) -> FastAPI:
    """`queued`: told when a message was queued (wakes a delivery role in this process)."""
    # The interactive docs are served from the app itself, with no CDN: the machine
    # may have no internet (fastapi-offline ships Swagger UI's files).
    app = FastAPIOffline(
        title="CRM Email Gateway",
        version=__version__,
        docs_url="/api/v1/docs",
        redoc_url=None,
        static_url="/api/v1/docs-static",
        openapi_url="/api/v1/openapi.json",
        responses=problems.RESPONSES,
    )
    app.state.db = db
    app.state.config = config
    app.state.metrics = metrics.registry(db)
    app.state.queued = queued
    vault = _once(lambda: Vault.load(config.secret_key_file))
    app.state.vault = vault
    app.state.cursors = _once(lambda: Cursors(vault()))
    app.state.keys = _once(lambda: Keys.of(vault()))
    problems.install(app)
    app.include_router(metrics.router)
    app.include_router(api.router)
    app.include_router(contacts.router)
    app.include_router(webhooks_api.router)
    app.include_router(explain_api.router)
    app.include_router(accounts_api.router)
    app.include_router(messages_api.router)
    app.include_router(meetings_api.router)
    app.include_router(mailboxes_api.router)
    app.include_router(domains_api.router)
    app.include_router(pages.router)
    app.include_router(connect_pages.router)  # before /mailboxes/{id}/...
    app.include_router(mailbox_pages.router)
    app.include_router(settings_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(webhook_pages.router)
    app.include_router(dns_pages.router)
    app.include_router(contact_pages.router)
    app.include_router(meeting_pages.router)
    app.include_router(unattached_pages.router)  # before /inbox/{id}
    app.include_router(inbox_pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> JSONResponse:
        """200 while the database answers; 503 otherwise (for load balancers)."""
        try:
            with request.app.state.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            raise Unavailable(f"the database does not answer: {type(exc).__name__}") from exc
        return JSONResponse({"status": "ok"})

    return app
