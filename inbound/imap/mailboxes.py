"""Connecting, reconnecting and removing mailboxes; their status.

A mailbox is saved only after a real sign-in to its IMAP server succeeded (and,
given a `check_sending`, to its SMTP server: the web and API connect pass
outbound's check), with its credentials encrypted (gateway.vault). A refused sign-in later (a
password reset, revoked access) puts it in reconnect_required until a person
gives new credentials with reconnect(); it then resumes from its checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session, selectinload

from gateway import events, oauth2
from gateway.addresses import parse_one
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Conflict, InputError, NotFound
from gateway.imap.connection import ImapSettings, MailboxError, close, connect
from gateway.imap.reasons import reconnect_reason
from gateway.imap.session import Connector, settings_of
from gateway.leases import Fence
from gateway.models import (
    Account,
    Mailbox,
    MailboxState,
    Plan,
    SyncMode,
    User,
    UserAddress,
)
from gateway.oauth2 import Tokens
from gateway.providers import PROVIDERS, SECURITIES, Server, discover, preset
from gateway.resolver import Resolver
from gateway.vault import Vault
from inbound.imap.progress import figures

MAILBOX_CONNECTED = "mailbox.connected"
MAILBOX_RECONNECTED = "mailbox.reconnected"
MAILBOX_RECONNECT_REQUIRED = "mailbox.reconnect_required"
MAILBOX_REMOVED = "mailbox.removed"
ONE_WAY_PLANS = (Plan.PRO.value, Plan.ENTERPRISE.value)
# Signs in to the mailbox's SMTP server (server, IMAP settings, the secret to sign in
# with), or raises MailboxError naming the step; runs after the IMAP sign-in worked.
SendingCheck = Callable[[Server, ImapSettings, str], None]


@dataclass(frozen=True)
class MailboxRequest:
    """What a person asks for in `gateway mailbox add` (None: from the preset)."""

    email: str
    provider: str = "other"
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    username: str | None = None
    sync_mode: str = SyncMode.TWO_WAY.value
    tls_verify: bool = True
    auth: str = "password"
    user_email: str | None = None  # the CRM user who owns it (default: by address)
    reading_only: bool = False  # no SMTP server, even where the preset has one


def _secret_to_store(auth: str, secret: str) -> tuple[str, str]:
    """(what to sign in with, what to keep): for OAuth2 the person gives token JSON."""
    if auth != "oauth2":
        return secret, secret
    try:
        tokens = Tokens.from_answer(json.loads(secret), now=None, previous=None)
    except (ValueError, oauth2.TokenError) as exc:
        raise InputError(
            "tokens", 'expected JSON {"access_token": ..., "refresh_token": ..., "expires_in": ...}'
        ) from exc
    return tokens.access_token, tokens.to_json()


def add_mailbox(
    db: Database,
    config: Config,
    vault: Vault,
    request: MailboxRequest,
    secret: str,
    *,
    connector: Connector = connect,
    check_sending: SendingCheck | None = None,
) -> Mailbox:
    email = _address(config, request.email)
    with db.read() as session:
        user = _owner(session, config, request.user_email or email)
        account = session.get_one(Account, user.account_id)
        if request.sync_mode == SyncMode.ONE_WAY.value and account.plan not in ONE_WAY_PLANS:
            raise InputError(
                "--sync",
                f"one-way sync needs the pro or enterprise plan; account {account.name!r} "
                f"is on {account.plan}",
            )
        if session.scalar(
            select(Mailbox.id).where(Mailbox.account_id == account.id, Mailbox.email == email)
        ):
            raise Conflict(f"mailbox {email} is already connected (use `mailbox reconnect`)")
        account_id, user_id = account.id, user.id
    imap, smtp = _servers(config, request, email)
    settings = ImapSettings(
        host=imap.host,
        port=imap.port,
        security=imap.security,
        username=request.username or email,
        provider=request.provider,
        tls_verify=request.tls_verify,
        auth=request.auth,
    )
    sign_in, keep = _secret_to_store(request.auth, secret)
    close(connector(settings, sign_in, config))  # the sign-in worked
    if check_sending is not None and smtp is not None and smtp.host:
        check_sending(smtp, settings, sign_in)
    mailbox = Mailbox(
        account_id=account_id,
        user_id=user_id,
        email=email,
        provider=request.provider,
        sync_mode=request.sync_mode,
        imap_host=imap.host,
        imap_port=imap.port,
        imap_security=imap.security,
        smtp_host=smtp.host if smtp else "",
        smtp_port=smtp.port if smtp else 0,
        smtp_security=smtp.security if smtp else "starttls",
        username=settings.username,
        auth=request.auth,
        credentials=vault.encrypt(keep),
        tls_verify=request.tls_verify,
        state=MailboxState.ACTIVE.value,
    )
    with db.session() as session:
        session.add(mailbox)
        session.flush()
        events.emit(session, account_id, MAILBOX_CONNECTED, mailbox_id=mailbox.id, email=email)
        session.expunge(mailbox)
    return mailbox


def reconnect(
    db: Database,
    config: Config,
    vault: Vault,
    email: str,
    secret: str,
    *,
    connector: Connector = connect,
) -> Mailbox:
    """New credentials for a mailbox: signs in first, then makes it active again."""
    with db.read() as session:
        mailbox_id = get_mailbox(session, config, email).id
    return reconnect_id(db, config, vault, mailbox_id, secret, connector=connector)


def reconnect_id(
    db: Database,
    config: Config,
    vault: Vault,
    mailbox_id: int,
    secret: str,
    *,
    connector: Connector = connect,
    check_sending: SendingCheck | None = None,
) -> Mailbox:
    """reconnect(), for the mailbox with this id."""
    with db.read() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        settings = settings_of(mailbox)
        smtp = Server(mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security)
    sign_in, keep = _secret_to_store(settings.auth, secret)
    close(connector(settings, sign_in, config))  # the sign-in worked
    if check_sending is not None and smtp.host:
        check_sending(smtp, settings, sign_in)
    with db.session() as session:
        row = session.get_one(Mailbox, mailbox.id)
        row.credentials = vault.encrypt(keep)
        row.state, row.last_error = MailboxState.ACTIVE.value, None
        row.reconnect_reason, row.sync_phase = None, None
        events.emit(
            session, row.account_id, MAILBOX_RECONNECTED, mailbox_id=row.id, email=row.email
        )
        session.flush()
        session.expunge(row)
        return row


def remove(db: Database, config: Config, email: str) -> None:
    """Stop syncing and delete the credentials; mail already attached stays."""
    with db.read() as session:
        mailbox_id = get_mailbox(session, config, email).id
    remove_id(db, mailbox_id)


def remove_id(db: Database, mailbox_id: int) -> None:
    """remove(), for the mailbox with this id."""
    with db.session() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise NotFound(f"no mailbox {mailbox_id}")
        events.emit(
            session, mailbox.account_id, MAILBOX_REMOVED, mailbox_id=mailbox.id, email=mailbox.email
        )
        session.delete(mailbox)


def needs_reconnect(
    db: Database, mailbox_id: int, error: MailboxError, fence: Fence | None = None
) -> None:
    """Credentials refused: stop syncing until a person reconnects the mailbox. The
    event says why (gateway.imap.reasons) and the server's words. `fence`: the
    syncing node's lease (a node that lost it says nothing)."""
    with db.session() as session:
        if fence is not None:
            fence(session)
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None or mailbox.state == MailboxState.RECONNECT_REQUIRED.value:
            return
        detail = str(error)[:2000]
        mailbox.state = MailboxState.RECONNECT_REQUIRED.value
        mailbox.last_error = detail
        mailbox.reconnect_reason = reconnect_reason(error, mailbox.auth)
        events.emit(
            session,
            mailbox.account_id,
            MAILBOX_RECONNECT_REQUIRED,
            mailbox_id=mailbox.id,
            email=mailbox.email,
            reason=mailbox.reconnect_reason,
            detail=detail,
        )


def set_phase(db: Database, mailbox_id: int, phase: str, fence: Fence | None = None) -> None:
    """Where a sync stands before its folders tell (connecting, listing_folders)."""
    with db.session() as session:
        if fence is not None:
            fence(session)
        session.execute(
            update(Mailbox)
            .where(
                Mailbox.id == mailbox_id,
                or_(Mailbox.sync_phase.is_(None), Mailbox.sync_phase != phase),
            )
            .values(sync_phase=phase)
        )


def take_sync_requests(db: Database, among: set[int] | None = None) -> set[int]:
    """The mailboxes someone asked to sync now (the API's "sync now"), cleared; only
    those `among` the ones this node syncs (the others' nodes take theirs)."""
    if among is not None and not among:
        return set()
    asked = select(Mailbox.id).where(Mailbox.sync_requested_at.is_not(None))
    if among is not None:
        asked = asked.where(Mailbox.id.in_(sorted(among)))
    with db.session() as session:
        wanted = set(session.scalars(asked))
        if wanted:
            session.execute(
                update(Mailbox).where(Mailbox.id.in_(wanted)).values(sync_requested_at=None)
            )
        return wanted


def record_error(
    db: Database, mailbox_id: int, reason: str | None, fence: Fence | None = None
) -> None:
    with db.session() as session:
        if fence is not None:
            fence(session)
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is not None and mailbox.last_error != reason:
            mailbox.last_error = reason[:2000] if reason else None


def visible_mailboxes(account_id: int, user_id: int | None) -> Select[Mailbox]:
    """The mailboxes a reader may see, by id: the account's (user_id None: an admin or
    the account's token), or a member's own."""
    query = select(Mailbox).where(Mailbox.account_id == account_id).order_by(Mailbox.id)
    if user_id is not None:
        query = query.where(Mailbox.user_id == user_id)
    return query


def visible_mailbox(
    session: Session, account_id: int, user_id: int | None, mailbox_id: int
) -> Mailbox | None:
    """One of visible_mailboxes(), folders loaded; None when it is not the reader's."""
    if not 0 < mailbox_id < 2**63:  # past what the database holds: none
        return None
    return session.scalar(
        visible_mailboxes(account_id, user_id)
        .where(Mailbox.id == mailbox_id)
        .options(selectinload(Mailbox.folders))
    )


def get_mailbox(session: Session, config: Config, email: str) -> Mailbox:
    address = _address(config, email)
    mailbox = session.scalar(
        select(Mailbox).where(Mailbox.email == address).options(selectinload(Mailbox.folders))
    )
    if mailbox is None:
        raise NotFound(f"no mailbox {email}")
    return mailbox


def status(session: Session) -> list[dict[str, Any]]:
    rows = []
    mailboxes = session.scalars(
        select(Mailbox).options(selectinload(Mailbox.folders)).order_by(Mailbox.id)
    )
    for mailbox in mailboxes:
        folders = [
            {
                **figures(f),
                "uidvalidity": f.uidvalidity,
                "last_uid": f.last_uid,
                "initial_sync": "done" if f.initial_done else "running",
            }
            for f in mailbox.folders
        ]
        rows.append(
            {
                "email": mailbox.email,
                "provider": mailbox.provider,
                "sync": mailbox.sync_mode,
                "state": mailbox.state,
                "imap": f"{mailbox.imap_host}:{mailbox.imap_port} ({mailbox.imap_security})",
                "last_sync_at": mailbox.last_sync_at.isoformat() if mailbox.last_sync_at else None,
                "last_error": mailbox.last_error,
                "folders": folders,
            }
        )
    return rows


# -- helpers ---------------------------------------------------------------------------


def _address(config: Config, email: str) -> str:
    parsed = parse_one(email, config.addresses.local_part_case)
    if parsed is None:
        raise InputError("EMAIL", f"{email!r} is not an email address")
    return parsed.normalized


def _owner(session: Session, config: Config, email: str) -> User:
    address = _address(config, email)
    user = session.scalar(
        select(User)
        .join(UserAddress, UserAddress.user_id == User.id)
        .where(UserAddress.address == address)
    )
    if user is None:
        raise NotFound(
            f"no user has the address {address}: add it to a user (`gateway user add "
            "--alias`) or name the owner with --user"
        )
    return user


def _servers(config: Config, request: MailboxRequest, email: str) -> tuple[Server, Server | None]:
    if request.provider not in PROVIDERS:
        preset(request.provider)  # raises, naming the known ones
    known = preset(request.provider)
    imap, smtp = known.imap, known.smtp
    if imap is None and not request.imap_host:
        found = discover(email, Resolver(config.dns))
        if found is None or found.imap is None:
            raise InputError(
                "--imap-host",
                f"no IMAP server known for {email} (no preset, SRV record or known MX): "
                "give --imap-host",
            )
        imap, smtp = found.imap, found.smtp
    if request.imap_host:
        imap = Server(
            request.imap_host, imap.port if imap else 993, imap.security if imap else "tls"
        )
    assert imap is not None
    imap = Server(
        imap.host,
        request.imap_port or imap.port,
        _security("--imap-security", request.imap_security or imap.security),
    )
    if request.reading_only:
        smtp = None
    elif request.smtp_host or smtp is not None:
        base = smtp or Server(request.smtp_host or "", 587, "starttls")
        smtp = Server(
            request.smtp_host or base.host,
            request.smtp_port or base.port,
            _security("--smtp-security", request.smtp_security or base.security),
        )
    return imap, smtp


def _security(flag: str, value: str) -> str:
    if value not in SECURITIES:
        raise InputError(flag, f"must be one of {', '.join(SECURITIES)}")
    return value
