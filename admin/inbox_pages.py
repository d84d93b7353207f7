"""The Inbox and the message view.

    GET /inbox                      matched mail, a conversation a row, newest first;
                                    search (subject or address), mailbox, direction
    GET /inbox/{id}                 one message: headers, contacts, attachments, the
                                    body, and "Why is this here?"
    GET /inbox/{id}/body            the HTML body made safe (gateway.mail_html), for
                                    the message view's sandboxed frame

A member sees the mail their own sources saw (gateway.message_queries); another's
message is "not found", as one that does not exist. Remote images stay out until
the reader asks for them (?images=1), for this message only.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.page_kit import HEADERS, Visit, config_of, db_of, minutes, page, visit
from gateway.explain import explain
from gateway.mail_html import safe_html
from gateway.message_parts import contents
from gateway.message_queries import (
    MessageFilter,
    Reader,
    contacts_of,
    conversation_counts,
    inbox_page,
    sightings_of,
    visible_message,
)
from gateway.models import Mailbox, Message, RawMessage, Source
from inbound.imap.mailboxes import visible_mailboxes

router = APIRouter(include_in_schema=False)
PAGE = 25
MAX_ID = 2**63 - 1
# The message view may frame its own body; nothing else changes from the pages' CSP.
VIEW_HEADERS = {
    "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace(
        "default-src 'none';", "default-src 'none'; frame-src 'self';"
    )
}
DIRECTIONS = {"incoming": "Received", "outgoing": "Sent"}


@router.get("/inbox")
async def inbox(
    request: Request, q: str = "", mailbox: str = "", direction: str = "", before: int = 0
) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    reader = Reader(here.principal.account_id, here.principal.user_id)
    q = q.strip()[:320] if "\x00" not in q else ""
    wanted = MessageFilter(
        matched=True,
        search=q or None,
        direction=direction if direction in DIRECTIONS else None,
        source=Source.DROPBOX.value if mailbox == "dropbox" else None,
        mailbox_id=int(mailbox) if mailbox.isdigit() and 0 < int(mailbox) <= MAX_ID else None,
    )
    before = before if 0 < before <= MAX_ID else 0

    def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with db_of(request).read() as session:
            ids = inbox_page(session, reader, wanted, before, PAGE + 1)
            rows = _rows(session, reader, ids[:PAGE])
            if len(ids) > PAGE:
                rows[-1]["last"] = True
            boxes = session.scalars(
                visible_mailboxes(here.principal.account_id, here.principal.user_id)
            )
            return rows, [{"id": b.id, "email": b.email} for b in boxes]

    rows, boxes = await asyncio.to_thread(work)
    query = {"q": q, "mailbox": mailbox, "direction": wanted.direction or ""}
    newest = "/inbox?" + urlencode({k: v for k, v in query.items() if v}) if before else None
    more = None
    if rows and rows[-1].get("last"):
        query["before"] = str(rows[-1]["id"])
        more = "/inbox?" + urlencode({k: v for k, v in query.items() if v})
    filtered = bool(q or wanted.direction or mailbox)
    return await page(
        request,
        here,
        "inbox.html",
        rows=rows,
        boxes=boxes,
        q=q,
        mailbox=mailbox,
        direction=wanted.direction or "",
        directions=DIRECTIONS,
        more=more,
        filtered=filtered,
        newest=newest,
    )


@router.get("/inbox/{message_id}")
async def message(message_id: int, request: Request, images: int = 0) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    reader = Reader(here.principal.account_id, here.principal.user_id)
    config = config_of(request)

    def work() -> dict[str, Any] | None:
        with db_of(request).read() as session:
            found = _visible(session, reader, message_id)
            if found is None:
                return None
            mail, raw = found
            body = contents(raw)
            seen = sightings_of(session, reader, [mail.id])[mail.id]
            why = None
            if mail.message_id_header:
                answer = explain(
                    session,
                    config,
                    reader.account_id,
                    mail.message_id_header,
                    None,
                    reader.user_id,
                )
                why = {
                    "answer": answer.answer,
                    "findings": [{"where": f.where, "reason": f.reason} for f in answer.findings],
                }
            mailboxes = {
                f"imap:{b.id}:": b.email
                for b in session.scalars(
                    select(Mailbox).where(Mailbox.account_id == mail.account_id)
                )
            }
            return {
                "id": mail.id,
                "subject": mail.subject or "(no subject)",
                "date": _date(mail),
                "direction": mail.direction,
                "from": mail.from_addresses,
                "to": mail.to_addresses,
                "cc": mail.cc_addresses,
                "message_id": mail.message_id_header or "",
                "contacts": contacts_of(session, [mail.id]).get(mail.id, []),
                "text": body.text,
                "html": body.html is not None,
                "remote_images": safe_html(body.html).remote_images if body.html else 0,
                "attachments": body.attachments,
                "seen": [_where(s.source, s.source_key, s.folder, mailboxes) for s in seen],
                "conversation_id": mail.conversation_id,
                "why": why,
            }

    card = await asyncio.to_thread(work)
    if card is None:
        return await page(request, here, "not_found.html", 404, what="message")
    return await page(
        request, here, "mail.html", mail=card, images=bool(images), headers=VIEW_HEADERS
    )


@router.get("/inbox/{message_id}/body")
async def body(message_id: int, request: Request, images: int = 0) -> Response:
    """The HTML body, sanitized, as its own document: framed by the message view only,
    sandboxed (no scripts, no same origin, no forms), remote images only if asked."""
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    reader = Reader(here.principal.account_id, here.principal.user_id)

    def work() -> str | None:
        with db_of(request).read() as session:
            found = _visible(session, reader, message_id)
            if found is None:
                return None
            markup = contents(found[1]).html
            return "" if markup is None else safe_html(markup, bool(images)).html

    markup = await asyncio.to_thread(work)
    if markup is None:
        return HTMLResponse("Not found", 404, headers=HEADERS)
    images_from = " https: http:" if images else ""
    policy = (
        f"default-src 'none'; img-src data:{images_from}; style-src 'unsafe-inline'; "
        "font-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    )
    document = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta http-equiv="x-dns-prefetch-control" content="off">'
        '<meta name="referrer" content="no-referrer">'
        "<style>body{font-family:system-ui,sans-serif;margin:0;padding:8px;"
        "overflow-wrap:anywhere}img{max-width:100%;height:auto}</style>"
        f"</head><body>{markup}</body></html>"
    )
    headers = {
        **HEADERS,
        "Content-Security-Policy": policy,
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(document, headers=headers)


def _visible(session: Session, reader: Reader, message_id: int) -> tuple[Message, bytes] | None:
    if not 0 < message_id <= MAX_ID:
        return None
    mail = visible_message(session, reader, message_id)
    if mail is None:
        return None
    raw = session.get(RawMessage, mail.raw_message_id)
    return None if raw is None else (mail, raw.data)


def _rows(session: Session, reader: Reader, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    mails = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}
    contacts = contacts_of(session, ids)
    counts = conversation_counts(
        session, reader, [m.conversation_id for m in mails.values() if m.conversation_id]
    )
    raws = {
        r.id: r.data
        for r in session.scalars(
            select(RawMessage).where(RawMessage.id.in_([m.raw_message_id for m in mails.values()]))
        )
    }
    out = []
    for i in ids:
        mail = mails[i]
        body = contents(raws.get(mail.raw_message_id, b""))
        sender = mail.from_addresses[0] if mail.from_addresses else {}
        out.append(
            {
                "id": mail.id,
                "subject": mail.subject or "(no subject)",
                "snippet": body.snippet,
                "date": _date(mail),
                "direction": mail.direction,
                "sender": sender.get("name") or sender.get("email") or "(no sender)",
                "sender_email": sender.get("email", ""),
                "contacts": contacts.get(i, []),
                "attachments": len(body.attachments),
                "count": counts.get(mail.conversation_id, 1) if mail.conversation_id else 1,
            }
        )
    return out


def _date(mail: Message) -> str:
    when = mail.sent_at or mail.created_at
    return minutes(when)


def _where(source: str, key: str, folder: str | None, mailboxes: dict[str, str]) -> str:
    if source == Source.DROPBOX.value:
        return "your BCC dropbox"
    if source == Source.IMAP.value:
        for prefix, email in mailboxes.items():
            if key.startswith(prefix):
                return f"{email}, folder {folder}" if folder else email
        return "a mailbox since removed"
    if source == Source.OUTBOUND.value:
        return "sent through the gateway"
    return {"import": "imported"}.get(source, source)
