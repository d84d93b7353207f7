"""Connect email: pick a provider, choose the sync, then sign in (OAuth2) or type a password.

    GET  /mailboxes/connect               the provider tiles
    GET  /mailboxes/connect/{provider}    the sync choice and the sign-in form
    POST /mailboxes/connect/{provider}    password: look up the servers, or connect
    POST /mailboxes/connect/{provider}/oauth   to the provider's sign-in page (PKCE)
    GET  /mailboxes/connect/callback      back from it: tokens stored, sync started
    POST /mailboxes/{id}/oauth            sign in again (reconnect an OAuth mailbox)

Connecting tries the steps in order (IMAP connect, IMAP sign-in, SMTP connect, SMTP
sign-in) and saves the mailbox only when all worked; a failure names its step and
the server's reason, and when a password was refused, what the provider asks for
instead (an app password). The OAuth2 flow's state, PKCE verifier and choices wait
in a cookie encrypted with the secret key, bound to the session, for ten minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from admin.connecting import connect_mailbox, reconnect_mailbox
from admin.page_kit import (
    HEADERS,
    STALE_FORM,
    Visit,
    back,
    config_of,
    db_of,
    form_of,
    page,
    visit,
)
from admin.session_cookie import secure
from gateway import oauth2_consent
from gateway.config import Config
from gateway.errors import GatewayError, InputError
from gateway.imap.connection import AUTH, STEPS, MailboxError
from gateway.models import Account, Mailbox, SyncMode, utcnow
from gateway.oauth2 import ISSUER, TokenError
from gateway.providers import SECURITIES, Preset, discover, preset
from gateway.resolver import Resolver
from gateway.vault import Vault
from inbound.imap.mailboxes import ONE_WAY_PLANS, MailboxRequest, visible_mailbox

router = APIRouter(include_in_schema=False)
# The tiles, in order, with the names people know them by.
TILES = {
    "gmail": "Gmail",
    "microsoft365": "Microsoft 365",
    "outlook": "Outlook",
    "zoho": "Zoho",
    "other": "Other",
}
COOKIE = "gateway_oauth"
CALLBACK = "/mailboxes/connect/callback"
WAIT = 600  # seconds a person has to finish signing in at the provider
SERVER_FIELDS = (
    "username",
    "imap_host",
    "imap_port",
    "imap_security",
    "smtp_host",
    "smtp_port",
    "smtp_security",
)
REFUSED_CONSENT = {
    "access_denied": "You did not allow the gateway to read and send your mail, so nothing "
    "was connected. Connect again and choose Allow to sync this mailbox.",
    "consent_required": "Your organization's admin must approve the gateway first. Ask them, "
    "then connect again.",
}


@dataclass(frozen=True)
class Pending:
    """An OAuth2 sign-in under way: what the person chose, until they come back."""

    state: str
    verifier: str
    provider: str
    sync_mode: str
    email: str
    servers: dict[str, str]
    session: str  # a digest of the session it belongs to
    reconnect: int | None
    started: float


@router.get("/mailboxes/connect")
async def tiles(request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    config = config_of(request)
    cards = [_tile(config, key) for key in TILES]
    return await page(request, here, "connect.html", tiles=cards)


@router.get("/mailboxes/connect/callback")
async def callback(request: Request) -> Response:
    """Back from the provider's sign-in: whatever happens, the pending sign-in is spent."""
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    response = await _come_back(request, here)
    response.delete_cookie(COOKIE, path="/mailboxes", httponly=True, samesite="lax")
    return response


async def _come_back(request: Request, here: Visit) -> Response:
    pending = _pending(request, here)
    query = request.query_params
    if pending is None or not hmac.compare_digest(pending.state, query.get("state", "")):
        words = (
            "This sign-in did not start in this browser, or took over ten minutes. "
            "Nothing was connected: start again."
        )
        return await _failed(request, here, 400, words)
    again = _again(pending)
    if query.get("error"):
        code = query["error"]
        words = REFUSED_CONSENT.get(code) or (
            f"The provider did not sign you in ({code}: {query.get('error_description', '')})."
        )
        return await _failed(request, here, 200, words, again)
    config = config_of(request)
    try:
        finished = await asyncio.to_thread(
            oauth2_consent.finish,
            config,
            pending.provider,
            _redirect_uri(request, config),
            query.get("code", ""),
            pending.verifier,
        )
    except TokenError as exc:
        return await _failed(request, here, 502, f"Signing in failed: {exc}", again)
    secret = finished.tokens.to_json()
    vault = Vault.load(config.secret_key_file)
    db = db_of(request)
    try:
        if pending.reconnect is not None:
            if await asyncio.to_thread(_mailbox_of, request, here, pending.reconnect) is None:
                return await page(request, here, "not_found.html", 404, what="mailbox")
            await asyncio.to_thread(reconnect_mailbox, db, config, vault, pending.reconnect, secret)
            return back("/mailboxes", "reconnected")
        email = finished.email or pending.email
        if not email:
            words = "The provider did not say which address signed in: enter it and sign in again."
            return await _failed(request, here, 422, words, again)
        wanted = _request(
            pending.provider, pending.sync_mode, email, pending.servers, here, "oauth2"
        )
        mailbox = await asyncio.to_thread(connect_mailbox, db, config, vault, wanted, secret)
    except MailboxError as exc:
        return await _failed(request, here, 422, "", again, steps_of(exc, with_smtp=True))
    except GatewayError as exc:
        return await _failed(request, here, 422, str(exc), again)
    await asyncio.to_thread(_ask_sync, request, mailbox.id)
    return back("/mailboxes", "connected")


@router.get("/mailboxes/connect/{provider}")
async def form(provider: str, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if provider not in TILES:
        return await page(request, here, "not_found.html", 404, what="provider")
    known = preset(provider)
    values = {"sync": SyncMode.TWO_WAY.value, "email": "", **_preset_servers(known)}
    return await _form_page(request, here, provider, values)


@router.post("/mailboxes/connect/{provider}")
async def connect(provider: str, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if provider not in TILES:
        return await page(request, here, "not_found.html", 404, what="provider")
    fields = await form_of(request, here)
    if fields is None:
        return await _form_page(request, here, provider, {}, 403, error=STALE_FORM)
    values = {k: fields.get(k, "").strip() for k in ("sync", "email", *SERVER_FIELDS)}
    if "password" not in preset(provider).auth:
        return await _form_page(request, here, provider, values, 422, error="Sign in instead.")
    config = config_of(request)
    if fields.get("action") == "lookup":
        return await _look_up(request, here, provider, values)
    refusal = await _sync_refused(request, here, values["sync"])
    if refusal:
        return await _form_page(request, here, provider, values, 422, error=refusal)
    password = fields.get("password", "")
    if not values["email"] or not password:
        error = "Enter the email address and its password."
        return await _form_page(request, here, provider, values, 422, error=error)
    try:
        wanted = _request(provider, values["sync"], values["email"], values, here, "password")
        vault = Vault.load(config.secret_key_file)
        mailbox = await asyncio.to_thread(
            connect_mailbox, db_of(request), config, vault, wanted, password
        )
    except MailboxError as exc:
        steps = steps_of(exc, with_smtp=bool(values.get("smtp_host")) or provider != "other")
        return await _form_page(request, here, provider, values, 422, steps=steps)
    except GatewayError as exc:
        return await _form_page(request, here, provider, values, 422, error=str(exc))
    await asyncio.to_thread(_ask_sync, request, mailbox.id)
    return back("/mailboxes", "connected")


@router.post("/mailboxes/connect/{provider}/oauth")
async def oauth_start(provider: str, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if provider not in ISSUER:
        return await page(request, here, "not_found.html", 404, what="provider")
    fields = await form_of(request, here)
    if fields is None:
        return await _form_page(request, here, provider, {}, 403, error=STALE_FORM)
    values = {k: fields.get(k, "").strip() for k in ("sync", "email", *SERVER_FIELDS)}
    refusal = await _sync_refused(request, here, values["sync"])
    if refusal:
        return await _form_page(request, here, provider, values, 422, error=refusal)
    servers = {k: values[k] for k in SERVER_FIELDS}
    return _to_provider(request, here, provider, values["sync"], values["email"], servers, None)


@router.post("/mailboxes/{mailbox_id}/oauth")
async def oauth_again(mailbox_id: int, request: Request) -> Response:
    here = await visit(request)
    if not isinstance(here, Visit):
        return here
    if await form_of(request, here) is None:
        return back("/mailboxes", "stale")
    found = await asyncio.to_thread(_mailbox_of, request, here, mailbox_id)
    if found is None or found[1] not in ISSUER:
        return await page(request, here, "not_found.html", 404, what="mailbox")
    email, provider, sync_mode = found
    return _to_provider(request, here, provider, sync_mode, email, {}, mailbox_id)


def oauth_headers(config: Config, provider: str) -> dict[str, str]:
    """The page's CSP with the provider's sign-in page allowed as a form's destination
    (the sign-in form posts here, and is redirected there)."""
    if provider not in ISSUER or oauth2_consent.missing(config, provider):
        return {}
    url = oauth2_consent.authorize_url(config, ISSUER[provider])
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    policy = HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {origin}"
    )
    return {"Content-Security-Policy": policy}


# -- helpers ---------------------------------------------------------------------------


def _tile(config: Config, key: str) -> dict[str, Any]:
    known = preset(key)
    oauth = key in ISSUER
    return {
        "key": key,
        "name": TILES.get(key, known.name),
        "oauth": oauth,
        "missing": oauth2_consent.missing(config, key) if oauth else None,
        "password": "password" in known.auth,
    }


def _preset_servers(known: Preset) -> dict[str, str]:
    imap, smtp = known.imap, known.smtp
    return {
        "username": "",
        "imap_host": imap.host if imap else "",
        "imap_port": str(imap.port) if imap else "993",
        "imap_security": imap.security if imap else "tls",
        "smtp_host": smtp.host if smtp else "",
        "smtp_port": str(smtp.port) if smtp else "465",
        "smtp_security": smtp.security if smtp else "tls",
    }


async def _form_page(
    request: Request,
    here: Visit,
    provider: str,
    values: dict[str, str],
    status: int = 200,
    *,
    error: str = "",
    notice: str = "",
    steps: list[dict[str, str]] | None = None,
) -> Response:
    config = config_of(request)
    known = preset(provider)
    values = {"sync": SyncMode.TWO_WAY.value, "email": "", **_preset_servers(known), **values}
    one_way = await asyncio.to_thread(_one_way_allowed, request, here)
    failed = next((s for s in steps or [] if s["state"] == "failed"), None)
    help_link = ""
    if failed is not None and failed.get("kind") == AUTH and failed["key"].endswith("sign_in"):
        help_link = known.app_password_help
    return await page(
        request,
        here,
        "connect_form.html",
        status,
        tile=_tile(config, provider),
        preset=known,
        values=values,
        one_way=one_way,
        securities=SECURITIES,
        steps=steps or [],
        failed=failed,
        help_link=help_link,
        error=error,
        notice=notice,
        open_servers=provider == "other" or bool(error and provider == "other"),
        headers=oauth_headers(config, provider),
    )


async def _look_up(
    request: Request, here: Visit, provider: str, values: dict[str, str]
) -> Response:
    """Fill the server settings from what the email's domain publishes."""
    config = config_of(request)
    if "@" not in values["email"]:
        error = "Enter the email address first: its domain tells where its servers are."
        return await _form_page(request, here, provider, values, 422, error=error)
    found = await asyncio.to_thread(discover, values["email"], Resolver(config.dns))
    domain = values["email"].rsplit("@", 1)[1]
    if found is None or found.imap is None:
        error = (
            f"{domain} publishes no mail server settings: enter them under Server "
            "settings (your provider's help pages list them)."
        )
        return await _form_page(request, here, provider, values, 422, error=error)
    values = {**values, "imap_host": found.imap.host, "imap_port": str(found.imap.port)}
    values["imap_security"] = found.imap.security
    if found.smtp is not None:
        values.update(
            smtp_host=found.smtp.host,
            smtp_port=str(found.smtp.port),
            smtp_security=found.smtp.security,
        )
    how = {"domain": "the address", "srv": f"{domain}'s SRV records"}.get(
        found.how, f"{domain}'s mail server ({found.how.removeprefix('mx ')})"
    )
    notice = f"Server settings found from {how}: check them, then Connect."
    return await _form_page(request, here, provider, values, notice=notice)


def _request(
    provider: str, sync: str, email: str, servers: dict[str, str], here: Visit, auth: str
) -> MailboxRequest:
    def port(name: str) -> int | None:
        text = servers.get(name, "")
        if not text:
            return None
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise InputError(name, f"{name.replace('_', ' ')}: {text!r} is not a port number")
        return int(text)

    def security(name: str) -> str | None:
        text = servers.get(name, "")
        if text and text not in SECURITIES:
            raise InputError(name, f"{name.replace('_', ' ')}: {text!r} is not one we know")
        return text or None

    sync = sync or SyncMode.TWO_WAY.value
    if sync not in (SyncMode.TWO_WAY.value, SyncMode.ONE_WAY.value):
        raise InputError("sync", "choose two-way or one-way sync")
    return MailboxRequest(
        email=email,
        provider=provider,
        imap_host=servers.get("imap_host") or None,
        imap_port=port("imap_port"),
        imap_security=security("imap_security"),
        smtp_host=servers.get("smtp_host") or None,
        smtp_port=port("smtp_port"),
        smtp_security=security("smtp_security"),
        username=servers.get("username") or None,
        sync_mode=sync,
        auth=auth,
        user_email=here.person.email,
        reading_only="smtp_host" in servers and not servers["smtp_host"],
    )


def steps_of(error: MailboxError, with_smtp: bool) -> list[dict[str, str]]:
    """Each step's state: done, failed (with the reason) or not tried."""
    keys = [k for k in STEPS if with_smtp or not k.startswith("smtp")]
    failed_at = keys.index(error.step) if error.step in keys else 0
    out = []
    for i, key in enumerate(keys):
        state = "done" if i < failed_at else "failed" if i == failed_at else "not tried"
        out.append(
            {
                "key": key,
                "label": STEPS[key],
                "state": state,
                "reason": str(error) if i == failed_at else "",
                "kind": error.kind if i == failed_at else "",
            }
        )
    return out


async def _sync_refused(request: Request, here: Visit, sync: str) -> str:
    if sync != SyncMode.ONE_WAY.value:
        return ""
    if await asyncio.to_thread(_one_way_allowed, request, here):
        return ""
    return "One-way sync is available on the Pro and Enterprise plans: choose two-way sync."


def _one_way_allowed(request: Request, here: Visit) -> bool:
    with db_of(request).read() as session:
        account = session.get_one(Account, here.person.account_id)
        return account.plan in ONE_WAY_PLANS


def _mailbox_of(request: Request, here: Visit, mailbox_id: int) -> tuple[str, str, str] | None:
    """(email, provider, sync mode) of a mailbox the person may change."""
    who = here.principal
    with db_of(request).read() as session:
        mailbox = visible_mailbox(session, who.account_id, who.user_id, mailbox_id)
        if mailbox is None:
            return None
        return mailbox.email, mailbox.provider, mailbox.sync_mode


def _ask_sync(request: Request, mailbox_id: int) -> None:
    """A new mailbox's first sync starts within seconds, not at the next pass."""
    with db_of(request).session() as session:
        _request_sync(session, mailbox_id)


def _request_sync(session: Session, mailbox_id: int) -> None:
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is not None:
        mailbox.sync_requested_at = utcnow()


def _redirect_uri(request: Request, config: Config) -> str:
    base = config.web.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return base + CALLBACK


def _bound(here: Visit) -> str:
    return hashlib.sha256(f"oauth {here.token}".encode()).hexdigest()[:32]


def _to_provider(
    request: Request,
    here: Visit,
    provider: str,
    sync: str,
    email: str,
    servers: dict[str, str],
    reconnect: int | None,
) -> Response:
    config = config_of(request)
    try:
        started = oauth2_consent.start(config, provider, _redirect_uri(request, config), email)
    except TokenError as exc:
        return back("/mailboxes", "oauth_unset") if reconnect else _plain_error(str(exc))
    pending = Pending(
        started.state,
        started.verifier,
        provider,
        sync,
        email,
        servers,
        _bound(here),
        reconnect,
        time.time(),
    )
    vault = Vault.load(config.secret_key_file)
    response = RedirectResponse(started.url, status_code=303)
    response.set_cookie(
        COOKIE,
        vault.encrypt(json.dumps(pending.__dict__)),
        max_age=WAIT,
        httponly=True,
        samesite="lax",
        secure=secure(request, config),
        path="/mailboxes",
    )
    return response


def _plain_error(text: str) -> Response:
    return Response(text, status_code=422, media_type="text/plain", headers=HEADERS)


def _pending(request: Request, here: Visit) -> Pending | None:
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        data = json.loads(Vault.load(config_of(request).secret_key_file).decrypt(value))
        pending = Pending(**data)
    except (GatewayError, ValueError, TypeError):
        return None
    if time.time() - pending.started > WAIT or not hmac.compare_digest(
        pending.session, _bound(here)
    ):
        return None
    return pending


def _again(pending: Pending) -> str:
    if pending.reconnect is not None:
        return f"/mailboxes/{pending.reconnect}/edit"
    return f"/mailboxes/connect/{pending.provider}"


async def _failed(
    request: Request,
    here: Visit,
    status: int,
    words: str,
    again: str = "/mailboxes/connect",
    steps: list[dict[str, str]] | None = None,
) -> Response:
    failed = next((s for s in steps or [] if s["state"] == "failed"), None)
    return await page(
        request,
        here,
        "connect_failed.html",
        status,
        words=words,
        again=again,
        steps=steps or [],
        failed=failed,
    )
