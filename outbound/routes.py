"""The routes a message leaves by, each a way to reach an SMTP server (RFC 5321):

    relay    [outbound] relay_url: TLS required (STARTTLS, or smtps://), AUTH
    mailbox  the user's own SMTP server, signed in as them (password or XOAUTH2)
    hold     the default: nothing leaves (deferred, and so bounced after max_age)
             until an operator sets default_route, relay_url or the user's route
    direct   the MX hosts of each recipient domain in order (the implicit MX, RFC
             7505 null MX), opportunistic STARTTLS, at most connections_per_domain
             at once, private hosts refused unless [security] allows them

`set_route` is what `gateway user route` and the API call to choose one.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import oauth2
from gateway.accounts import get_user
from gateway.addresses import domain_of, parse_one
from gateway.config import Config
from gateway.db import Database
from gateway.errors import InputError
from gateway.models import Mailbox, MailboxState
from gateway.netguard import check_host
from gateway.providers import Server as Endpoint
from gateway.resolver import DnsTempError, Resolver
from gateway.vault import Vault
from outbound.claims import CAN_SEND, Job
from outbound.smtp_check import mailbox_server
from outbound.smtp_client import (
    TLS_IMPLICIT,
    TLS_OPPORTUNISTIC,
    TLS_REQUIRED,
    Result,
    Server,
    Sessions,
    transmit,
)

ROUTES = ("mailbox", "direct", "relay")  # what a user may choose
HOLD = "hold"  # [outbound] default_route: nothing leaves until a route is set
HELD = (
    "4.3.5 held: no route is set for this user ([outbound] default_route is hold); "
    "set relay_url and default_route, or `gateway user route EMAIL ...`"
)


class Routes:
    """Sends a signed message by its job's route; each recipient's result."""

    def __init__(self, db: Database, config: Config, vault: Vault) -> None:
        self.db = db
        self.config = config
        self.vault = vault
        self.resolver = Resolver(config.dns)
        # SMTP sessions kept open between messages: as many as may be sending at once
        self.sessions = Sessions(per_server=config.outbound.concurrency)
        self._domains: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(config.outbound.connections_per_domain)
        )

    def close(self) -> None:
        self.sessions.close()

    def send(self, job: Job, data: bytes) -> dict[str, Result]:
        if job.route == HOLD:
            return dict.fromkeys(job.recipients, Result(451, HELD))
        timeout = self.config.outbound.timeout
        helo = self.config.outbound.helo_name
        if job.route == "relay":
            return transmit(
                self._relay(), helo, job.mail_from, job.recipients, data, timeout, self.sessions
            )
        if job.route == "mailbox":
            server = self._mailbox(job.user_id)
            return transmit(
                server, helo, job.mail_from, job.recipients, data, timeout, self.sessions
            )
        results: dict[str, Result] = {}
        by_domain: dict[str, list[str]] = defaultdict(list)
        for recipient in job.recipients:
            address = parse_one(recipient)
            if address is None:
                results[recipient] = Result(553, "5.1.3 bad recipient address")
                continue
            by_domain[domain_of(address.normalized)].append(recipient)
        for domain, recipients in by_domain.items():
            with self._domains[domain]:
                results.update(self._direct(domain, recipients, job.mail_from, data))
        return results

    def _direct(
        self, domain: str, recipients: list[str], mail_from: str, data: bytes
    ) -> dict[str, Result]:
        outbound = self.config.outbound
        try:
            hosts = self._mx_hosts(domain)
        except DnsTempError as exc:
            return dict.fromkeys(recipients, Result(451, f"4.4.3 DNS: {exc}"))
        if hosts is None:  # RFC 7505 null MX: the domain takes no mail
            return dict.fromkeys(recipients, Result(556, "5.1.10 the domain accepts no mail"))
        if not hosts:
            return dict.fromkeys(recipients, Result(550, "5.1.2 the domain has no mail server"))
        results: dict[str, Result] = {}
        for host in hosts:
            try:
                address = check_host(
                    host,
                    outbound.direct_port,
                    self.config.security.allowed_private_networks,
                    what="MX host",
                    resolver=self.resolver,
                )
            except InputError as exc:
                results = dict.fromkeys(recipients, Result(451, f"4.4.4 {exc}"))
                continue
            server = Server(host, address, outbound.direct_port, TLS_OPPORTUNISTIC)
            results = transmit(
                server,
                outbound.helo_name,
                mail_from,
                recipients,
                data,
                outbound.timeout,
                self.sessions,
            )
            if not all(r.temporary and r.code == 451 for r in results.values()):
                return results  # this MX answered: its word stands
        return results

    def _mx_hosts(self, domain: str) -> list[str] | None:
        records = self.resolver.mx(domain)
        if not records:
            return [domain]  # RFC 5321 5.1: the implicit MX
        names = [r.exchange for r in records]
        if names == [""]:
            return None
        return [n for n in names if n]

    def _relay(self) -> Server:
        url = urlsplit(self.config.outbound.relay_url)
        if not url.hostname:
            raise InputError("[outbound] relay_url", "the relay route needs relay_url")
        implicit = url.scheme == "smtps"
        port = url.port or (465 if implicit else 587)
        address = check_host(
            url.hostname,
            port,
            self.config.security.allowed_private_networks,
            what="relay host",
            resolver=self.resolver if self.config.dns.nameservers else None,
        )
        login = None
        if url.username:
            login = (unquote(url.username), unquote(url.password or ""))
        return Server(
            url.hostname,
            address,
            port,
            TLS_IMPLICIT if implicit else TLS_REQUIRED,
            self.config.outbound.relay_tls_verify,
            login,
        )

    def _mailbox(self, user_id: int) -> Server:
        """The SMTP server of the user's connected mailbox, signed in as them (password,
        or an XOAUTH2 access token refreshed when it has expired)."""
        with self.db.read() as session:
            mailbox = sending_mailbox(session, user_id)
            if mailbox is None or mailbox.credentials is None:
                raise InputError("mailbox route", "the user has no connected mailbox to send with")
            host, port, security = mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security
            username, auth, verify = mailbox.username, mailbox.auth, mailbox.tls_verify
            provider, mailbox_id = mailbox.provider, mailbox.id
            secret = self.vault.decrypt(mailbox.credentials)
        endpoint = Endpoint(host, port, security)
        resolver = self.resolver if self.config.dns.nameservers else None
        if auth != "oauth2":
            return mailbox_server(self.config, endpoint, username, auth, secret, verify, resolver)
        tokens = oauth2.Tokens.from_json(secret)
        if tokens.expired():
            try:
                tokens = oauth2.refresh(self.config, provider, tokens)
            except oauth2.TokenError as exc:
                raise InputError(
                    "mailbox route", f"the access token was not refreshed: {exc}"
                ) from exc
            with self.db.session() as session:
                session.get_one(Mailbox, mailbox_id).credentials = self.vault.encrypt(
                    tokens.to_json()
                )
        token = tokens.access_token
        return mailbox_server(self.config, endpoint, username, auth, token, verify, resolver)


def set_route(db: Database, config: Config, email: str, route: str) -> None:
    if route not in ROUTES:
        raise InputError("ROUTE", f"must be one of {', '.join(ROUTES)}")
    if route == "relay" and not config.outbound.relay_url:
        raise InputError("ROUTE", "relay needs [outbound] relay_url")
    with db.session() as session:
        user = get_user(session, config, email)
        if route == "mailbox" and sending_mailbox(session, user.id) is None:
            raise InputError("ROUTE", f"{email} has no connected mailbox with an SMTP server")
        user.route = route


def sending_mailbox(session: Session, user_id: int) -> Mailbox | None:
    """The user's connected mailbox that can send (an SMTP server, signed in)."""
    return session.scalars(
        select(Mailbox)
        .where(
            Mailbox.user_id == user_id,
            CAN_SEND,
            Mailbox.state == MailboxState.ACTIVE.value,
        )
        .order_by(Mailbox.id)
    ).first()
