"""The Mailboxes page: each connected mailbox with its sync's phase and progress,
Sync now, Edit (enter the password again) and Delete (after saying what stays).

A member sees their own mailboxes; an admin every mailbox of the account, with its
owner. The figures are the sync-status API's (inbound.imap.progress); a small
script refreshes them while the page is open, and the page is right without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, selectinload

from admin.connect_pages import oauth_headers, steps_of
from admin.connecting import reconnect_mailbox
from admin.page_kit import STALE_FORM, Visit, back, config_of, db_of, form_of, minutes, page, visit
from gateway import oauth2_consent
from gateway.imap.connection import STEPS, MailboxError
from gateway.models import Mailbox, MailboxState, User, utcnow
from gateway.oauth2 import ISSUER
from gateway.vault import Vault
from inbound.imap.mailboxes import (
    remove_id,
    visible_mailbox,
    visible_mailboxes,
)
from inbound.imap.progress import sync_status

router = APIRouter(include_in_schema=False)
DONE = {
    "connected": "Connected: the first sync starts within seconds, and its progress shows here.",
    "oauth_unset": "Signing in with this provider is not set up on this gateway: ask the admin "
    "to set its [oauth2] client id and secret.",
    "synced": "Sync asked for: it starts within seconds.",
    "reconnected": "Reconnected: sync resumes where it stopped.",
    "removed": "Mailbox removed: sync stopped and its password is deleted. Its mail stays.",
    "stale": STALE_FORM,
}
REASONS = {
    "password_changed": "The server refused the password: it was changed, or the app "
    "password was revoked. Enter the current one.",
    "oauth_revoked": "The provider refused the gateway's access: it was revoked or expired.",
    "imap_disabled": "The server says IMAP is turned off for this account: turn it on in the "
    "mail provider's settings, then reconnect.",
    "throttled": "The server keeps refusing sign-in as too many attempts: wait a while, "
    "then reconnect.",
    "not_allowed": "The gateway's own rules refuse this server (a private address, or IMAP "
    "without TLS).",
}


@router.get("/mailboxes")
async def mailboxes(request: Request, done: str = "") -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here

    def work() -> list[dict[str, Any]]:
        with db_of(request).read() as session:
            return [_card(session, m) for m in _visible(session, here)]

    cards = await asyncio.to_thread(work)
    return await page(request, here, "mailboxes.html", cards=cards, notice=DONE.get(done, ""))


@router.post("/mailboxes/{mailbox_id}/sync")
async def sync_now(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/mailboxes", "stale")

    def work() -> bool:
        with db_of(request).session() as session:
            mailbox = _one(session, here, mailbox_id)
            if mailbox is None or mailbox.state != MailboxState.ACTIVE.value:
                return False
            mailbox.sync_requested_at = utcnow()
            return True

    await asyncio.to_thread(work)
    return back("/mailboxes", "synced")


@router.get("/mailboxes/{mailbox_id}/edit")
async def edit(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    return await _edit_page(request, here, mailbox_id)


async def _edit_page(
    request: Request,
    here: Visit,
    mailbox_id: int,
    status: int = 200,
    error: str = "",
    steps: list[dict[str, str]] | None = None,
) -> Response:
    card = await asyncio.to_thread(_card_of, request, here, mailbox_id)
    if card is None:
        return await page(request, here, "not_found.html", 404, what="mailbox")
    config = config_of(request)
    provider = card["provider"]
    missing = oauth2_consent.missing(config, provider) if card["auth"] == "oauth2" else None
    return await page(
        request,
        here,
        "mailbox_edit.html",
        status,
        card=card,
        error=error,
        steps=steps or [],
        oauth_ready=card["auth"] == "oauth2" and missing is None,
        oauth_missing=missing or "",
        issuer=oauth2_consent.ISSUER_NAMES.get(ISSUER.get(provider, ""), ""),
        headers=oauth_headers(config, provider) if card["auth"] == "oauth2" else {},
    )


@router.post("/mailboxes/{mailbox_id}/edit")
async def reconnect(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    fields = await form_of(request, here)
    if fields is None:
        return await _edit_page(request, here, mailbox_id, 403, STALE_FORM)
    owned = await asyncio.to_thread(_owned, request, here, mailbox_id)
    if owned is None:
        return await page(request, here, "not_found.html", 404, what="mailbox")
    if owned != "password":
        message = "This mailbox signs in with OAuth: sign in again below."
        return await _edit_page(request, here, mailbox_id, 422, message)
    password = fields.get("password", "")
    if not password:
        return await _edit_page(request, here, mailbox_id, 422, "Enter the password.")
    config = config_of(request)
    try:
        vault = Vault.load(config.secret_key_file)
        await asyncio.to_thread(
            reconnect_mailbox, db_of(request), config, vault, mailbox_id, password
        )
    except MailboxError as exc:
        sends = await asyncio.to_thread(_sends, request, mailbox_id)
        steps = steps_of(exc, with_smtp=sends)
        failed = STEPS.get(exc.step, "Connecting")
        message = f"{failed} failed, so the password was not saved."
        return await _edit_page(request, here, mailbox_id, 422, message, steps)
    return back("/mailboxes", "reconnected")


@router.get("/mailboxes/{mailbox_id}/delete")
async def confirm_delete(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here

    card = await asyncio.to_thread(_card_of, request, here, mailbox_id)
    if card is None:
        return await page(request, here, "not_found.html", 404, what="mailbox")
    return await page(request, here, "mailbox_delete.html", card=card)


@router.post("/mailboxes/{mailbox_id}/delete")
async def delete(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/mailboxes", "stale")
    if await asyncio.to_thread(_owned, request, here, mailbox_id) is None:
        return await page(request, here, "not_found.html", 404, what="mailbox")
    await asyncio.to_thread(remove_id, db_of(request), mailbox_id)
    return back("/mailboxes", "removed")


def _visible(session: Session, here: Visit) -> list[Mailbox]:
    who = here.principal
    query = visible_mailboxes(who.account_id, who.user_id)
    return list(session.scalars(query.options(selectinload(Mailbox.folders))))


def _one(session: Session, here: Visit, mailbox_id: int) -> Mailbox | None:
    """The mailbox if the person may see it (else None: as if there were none)."""
    who = here.principal
    return visible_mailbox(session, who.account_id, who.user_id, mailbox_id)


def _card_of(request: Request, here: Visit, mailbox_id: int) -> dict[str, Any] | None:
    """The mailbox's card, if the person may see it."""
    with db_of(request).read() as session:
        mailbox = _one(session, here, mailbox_id)
        return None if mailbox is None else _card(session, mailbox)


def _sends(request: Request, mailbox_id: int) -> bool:
    with db_of(request).read() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        return mailbox is not None and bool(mailbox.smtp_host)


def _owned(request: Request, here: Visit, mailbox_id: int) -> str | None:
    """How the mailbox signs in, if the person may change it."""
    with db_of(request).read() as session:
        mailbox = _one(session, here, mailbox_id)
        return None if mailbox is None else mailbox.auth


def _card(session: Session, mailbox: Mailbox) -> dict[str, Any]:
    status = sync_status(mailbox)
    owner = session.get(User, mailbox.user_id)
    done = status["scanned"]
    total = status["total"]
    percent = min(100, round(100 * done / total)) if total else 0
    return {
        "id": mailbox.id,
        "email": mailbox.email,
        "owner": owner.email if owner else "",
        "provider": mailbox.provider,
        "sync_mode": "two-way" if mailbox.sync_mode == "two_way" else "one-way",
        "imap": f"{mailbox.imap_host}:{mailbox.imap_port} ({mailbox.imap_security})",
        "auth": mailbox.auth,
        "status": status,
        "percent": percent,
        "badge": badge(status, percent),
        "reason": REASONS.get(status["reason"] or "", ""),
        "last_sync": minutes(status["last_sync_at"], "never"),
    }


def badge(status: dict[str, Any], percent: int) -> tuple[str, str]:
    """(words, style) of the state badge: never colour alone."""
    phase = status["phase"]
    if phase == "reconnect_required":
        return "Needs reconnect", "attention"
    if phase == "stalled":
        return "Error", "attention"
    if phase == "live":
        return "Live", "live"
    if phase == "importing_history":
        return f"Syncing {percent}%", "syncing"
    return "Connecting", "syncing"
