"""Connected mailboxes over HTTP.

    GET    /mailboxes                    list (read)
    GET    /mailboxes/{id}               one (read)
    GET    /mailboxes/{id}/sync-status   the phase and its figures (read)
    POST   /mailboxes                    connect: signs in first, saved only if it worked (write)
    POST   /mailboxes/{id}/reconnect     new credentials; sync resumes where it stopped (write)
    POST   /mailboxes/{id}/sync          sync now: the imap role starts within seconds (write)
    DELETE /mailboxes/{id}               sync stops, the password is deleted, mail stays (write)

The checks and error reasons are `gateway mailbox add`'s (inbound.imap.mailboxes):
a sign-in the server refuses is a 422 problem whose `reason` says which step failed
(auth, tls, unreachable, timeout, refused, protocol, throttled) and whose detail
says what to do. A member connects and sees only their own mailboxes; credentials
are never answered.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from admin.auth import Principal, scoped
from admin.connecting import connect_mailbox, reconnect_mailbox
from admin.pagination import check_limit, page
from admin.params import MAX_ID, ItemId
from admin.sessions import in_session
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Conflict, Forbidden, InputError, NotFound
from gateway.models import Mailbox, MailboxState, SyncMode, User, utcnow
from gateway.vault import Vault
from inbound.imap.mailboxes import (
    MailboxRequest,
    remove_id,
    visible_mailbox,
    visible_mailboxes,
)
from inbound.imap.progress import sync_status

router = APIRouter(prefix="/api/v1")
READ, WRITE = Depends(scoped("read")), Depends(scoped("write"))


class Server(BaseModel):
    host: str
    port: int
    security: str


class MailboxOut(BaseModel):
    id: int
    email: str
    user_id: int
    provider: str
    sync_mode: str
    state: str = Field(description="active | reconnect_required")
    reconnect_reason: str | None
    imap: Server
    smtp: Server | None
    username: str
    auth: str = Field(description="password | oauth2")
    tls_verify: bool
    last_sync_at: str | None
    last_error: str | None
    created_at: str


class MailboxPage(BaseModel):
    data: list[MailboxOut]
    next_cursor: str | None


class Credentials(BaseModel):
    model_config = {"extra": "forbid"}

    password: str | None = Field(default=None, description="the password or app password")
    oauth2_tokens: dict[str, Any] | None = Field(
        default=None, description="OAuth2: {access_token, refresh_token, expires_in}"
    )

    def secret(self) -> tuple[str, str]:
        """(auth, secret) as inbound.imap.mailboxes takes them."""
        if (self.password is None) == (self.oauth2_tokens is None):
            raise InputError("password", "give either password or oauth2_tokens")
        if self.oauth2_tokens is not None:
            return "oauth2", json.dumps(self.oauth2_tokens)
        assert self.password is not None
        return "password", self.password


class MailboxIn(Credentials):
    email: str
    provider: str = Field(default="other", description="gmail, microsoft365, outlook, zoho, ...")
    imap_host: str | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_security: str | None = Field(default=None, description="tls | starttls | none")
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: str | None = None
    username: str | None = None
    sync_mode: SyncMode = SyncMode.TWO_WAY
    tls_verify: bool = True
    user_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="its owner (default: by address)"
    )


class FolderStatus(BaseModel):
    role: str
    name: str
    initial_sync_done: bool
    total: int
    scanned: int
    matched: int
    fetched: int
    missing: int
    audited_at: str | None


class CalendarStatus(BaseModel):
    name: str
    kind: str = Field(description="caldav or graph")
    events: int = Field(description="events of the synced window it holds")
    synced_at: str | None
    last_error: str | None


class SyncStatus(BaseModel):
    mailbox_id: int
    email: str
    phase: str = Field(
        description="connecting | listing_folders | importing_history | live | "
        "reconnect_required | stalled"
    )
    reason: str | None = Field(
        description="reconnect_required: password_changed, oauth_revoked, imap_disabled, "
        "throttled or not_allowed"
    )
    last_error: str | None
    last_sync_at: str | None
    folders: list[FolderStatus]
    total: int
    scanned: int
    matched: int
    fetched: int
    missing: int = Field(description="the last audit's messages involving a contact not stored")
    estimate_seconds: int | None = Field(description="time left of the initial sync")
    calendars: list[CalendarStatus] = Field(description="its calendars (the calendar role)")


class SyncRequested(BaseModel):
    requested_at: str
    status: str = Field(description="where to follow it")


@router.get("/mailboxes", response_model=MailboxPage, summary="List connected mailboxes")
async def list_mailboxes(
    request: Request, limit: int = 50, cursor: str | None = None, who: Principal = READ
) -> dict[str, Any]:
    check_limit(limit)
    query = {"account": who.account_id, "member": who.user_id, "list": "mailboxes"}
    after = request.app.state.cursors().after(cursor, query)

    def work(session: Session) -> list[dict[str, Any]]:
        found = visible_mailboxes(who.account_id, who.user_id).where(Mailbox.id > after)
        rows = session.scalars(found.limit(limit + 1))
        return [_out(m) for m in rows]

    return page(await in_session(request, work), limit, request.app.state.cursors(), query)


@router.get("/mailboxes/{mailbox_id}", response_model=MailboxOut, summary="One mailbox")
async def one_mailbox(
    mailbox_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    return await in_session(request, lambda s: _out(_get(s, who, mailbox_id)))


@router.get(
    "/mailboxes/{mailbox_id}/sync-status",
    response_model=SyncStatus,
    summary="Where its sync stands: the phase and its figures",
)
async def mailbox_sync_status(
    mailbox_id: ItemId, request: Request, who: Principal = READ
) -> dict[str, Any]:
    return await in_session(request, lambda s: sync_status(_get(s, who, mailbox_id)))


@router.post(
    "/mailboxes",
    status_code=201,
    response_model=MailboxOut,
    summary="Connect a mailbox (signs in first; saved only if that worked)",
)
async def connect(body: MailboxIn, request: Request, who: Principal = WRITE) -> dict[str, Any]:
    config: Config = request.app.state.config
    db: Database = request.app.state.db
    auth, secret = body.secret()
    owner = await in_session(request, lambda s: _owner_email(s, who, body.user_id, body.email))
    mailbox_request = MailboxRequest(
        email=body.email,
        provider=body.provider,
        imap_host=body.imap_host,
        imap_port=body.imap_port,
        imap_security=body.imap_security,
        smtp_host=body.smtp_host,
        smtp_port=body.smtp_port,
        smtp_security=body.smtp_security,
        username=body.username,
        sync_mode=body.sync_mode.value,
        tls_verify=body.tls_verify,
        auth=auth,
        user_email=owner,
    )
    vault: Vault = request.app.state.vault()
    mailbox = await asyncio.to_thread(connect_mailbox, db, config, vault, mailbox_request, secret)
    return await in_session(request, lambda s: _out(_get(s, who, mailbox.id)))


@router.post(
    "/mailboxes/{mailbox_id}/reconnect",
    response_model=MailboxOut,
    summary="New credentials: signs in first, then sync resumes where it stopped",
)
async def reconnect(
    mailbox_id: ItemId, body: Credentials, request: Request, who: Principal = WRITE
) -> dict[str, Any]:
    config: Config = request.app.state.config
    db: Database = request.app.state.db
    auth = await in_session(request, lambda s: _get(s, who, mailbox_id).auth)
    given, secret = body.secret()
    if given != auth:
        field = "oauth2_tokens" if auth == "oauth2" else "password"
        raise InputError(field, f"this mailbox signs in with {auth}: give {field}")
    vault: Vault = request.app.state.vault()
    await asyncio.to_thread(reconnect_mailbox, db, config, vault, mailbox_id, secret)
    return await in_session(request, lambda s: _out(_get(s, who, mailbox_id)))


@router.post(
    "/mailboxes/{mailbox_id}/sync",
    status_code=202,
    response_model=SyncRequested,
    summary="Sync now (the imap role starts within seconds)",
)
async def sync_now(mailbox_id: ItemId, request: Request, who: Principal = WRITE) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        mailbox = _get(session, who, mailbox_id)
        if mailbox.state == MailboxState.RECONNECT_REQUIRED.value:
            raise Conflict("the mailbox needs new credentials first: POST .../reconnect")
        mailbox.sync_requested_at = utcnow()
        return {
            "requested_at": mailbox.sync_requested_at.isoformat(),
            "status": f"/api/v1/mailboxes/{mailbox_id}/sync-status",
        }

    return await in_session(request, work)


@router.delete(
    "/mailboxes/{mailbox_id}",
    status_code=204,
    summary="Disconnect: sync stops and the password is deleted; mail on contacts stays",
)
async def delete(mailbox_id: ItemId, request: Request, who: Principal = WRITE) -> Response:
    await in_session(request, lambda s: _get(s, who, mailbox_id))
    await asyncio.to_thread(remove_id, request.app.state.db, mailbox_id)
    return Response(status_code=204)


def _get(session: Session, who: Principal, mailbox_id: int) -> Mailbox:
    mailbox = visible_mailbox(session, who.account_id, who.user_id, mailbox_id)
    if mailbox is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return mailbox


def _owner_email(session: Session, who: Principal, user_id: int | None, email: str) -> str:
    """The owner's login address: a member's own; an admin names one or lets the
    address decide (as `gateway mailbox add`)."""
    wanted = who.user_id if who.user_id is not None else user_id
    if who.user_id is not None and user_id not in (None, who.user_id):
        raise Forbidden("a member connects only their own mailboxes")
    if wanted is None:
        return email
    user = session.get(User, wanted)
    if user is None or user.account_id != who.account_id:
        raise NotFound(f"no user {wanted}")
    return user.email


def _out(mailbox: Mailbox) -> dict[str, Any]:
    smtp = None
    if mailbox.smtp_host:
        smtp = {
            "host": mailbox.smtp_host,
            "port": mailbox.smtp_port,
            "security": mailbox.smtp_security,
        }
    return {
        "id": mailbox.id,
        "email": mailbox.email,
        "user_id": mailbox.user_id,
        "provider": mailbox.provider,
        "sync_mode": mailbox.sync_mode,
        "state": mailbox.state,
        "reconnect_reason": mailbox.reconnect_reason,
        "imap": {
            "host": mailbox.imap_host,
            "port": mailbox.imap_port,
            "security": mailbox.imap_security,
        },
        "smtp": smtp,
        "username": mailbox.username,
        "auth": mailbox.auth,
        "tls_verify": mailbox.tls_verify,
        "last_sync_at": mailbox.last_sync_at.isoformat() if mailbox.last_sync_at else None,
        "last_error": mailbox.last_error,
        "created_at": mailbox.created_at.isoformat(),
    }
