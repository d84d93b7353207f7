"""The `dropbox` role: an SMTP server that receives mail BCC'd or forwarded to users' dropboxes.

    EHLO -> MAIL (syntax, SMTPUTF8) -> RCPT (recipients.RecipientPolicy, caps)
         -> DATA: bare CR/LF and 8-bit header checks -> SenderVerifier (per policy)
         -> accept_in per user (raw once, one sighting each), group-committed [commit]
         -> 250 -> wake the pipeline

Nothing is acknowledged before the commit; a full disk or database is 452
4.3.1, never 250. Every reply comes from gateway.smtp_replies through
gateway.smtp_server.reply_for().
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from gateway import dmarc_reports
from gateway import smtp_replies as replies
from gateway.addresses import domain_of, parse_address_list
from gateway.config import Config, host_port
from gateway.db import Database
from gateway.errors import MailRejected, MessageRejected, SenderRejected
from gateway.group_commit import GroupCommitter
from gateway.models import Keep, Source, UserAddress
from gateway.parsing import parse
from gateway.refusals import record_refusal
from gateway.resolver import Resolver
from gateway.role import RoleContext, cannot_listen
from gateway.smtp_limits import Gate, LocalGate, dropbox_limiter
from gateway.smtp_server import GatewayHandler, GatewaySMTP, reply_for, storage_error
from gateway.store import Arrival, accept_in
from gateway.tls import server_context
from inbound.forwarded import find_forwarded, might_be_forwarded
from inbound.recipients import DropboxRecipient, RecipientPolicy
from inbound.verification import SenderVerifier, Verdict

log = logging.getLogger(__name__)

_BARE_NEWLINE = re.compile(rb"(?<!\r)\n|\r(?!\n)")
_HEADER_END = re.compile(rb"\r\n\r\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Transaction:
    """Per-envelope state beside aiosmtpd's Envelope."""

    recipients: dict[int, DropboxRecipient] = field(default_factory=dict)
    report: bool = False  # addressed to the DMARC reports address


@dataclass(frozen=True)
class Decision:
    keep: bool  # False: reject
    quarantine: bool = False
    reason: str = ""


class DropboxHandler(GatewayHandler):
    def __init__(
        self,
        db: Database,
        config: Config,
        verifier: SenderVerifier,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.config = config
        self.committer = GroupCommitter(db.connection, name="dropbox-commit")
        self.recipients = RecipientPolicy(db, config)
        self.verifier = verifier
        self.wake = wake
        self.trusted = [
            ipaddress.ip_network(n, strict=False) for n in config.dropbox.trusted_networks
        ]

    def __dir__(self) -> list[str]:
        # aiosmtpd lists a handler's hooks with dir() and inspect.getmembers() for
        # every connection: a getattr of every attribute. Only the hooks count.
        return _HOOKS

    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        source = getattr(proxy_data, "src_addr", None)
        if source is None:
            return False
        assert isinstance(server, GatewaySMTP)
        return await server.admit_proxied(str(source))

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if _CONTROL.search(address) or "\ufffd" in address:
            return str(replies.BAD_SENDER)
        if not address.isascii() and "SMTPUTF8" not in [o.upper() for o in options]:
            return str(replies.NEEDS_SMTPUTF8_ADDRESS)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        _transaction(envelope).recipients.clear()
        _transaction(envelope).report = False
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        transaction = _transaction(envelope)
        if len(envelope.rcpt_tos) >= self.config.dropbox.max_recipients:
            return str(replies.TOO_MANY_RECIPIENTS)
        if _CONTROL.search(address):
            return str(replies.BAD_RECIPIENT)
        if self.recipients.is_reports(address):
            transaction.report = True  # DMARC reports: from anyone, no sender checks
            envelope.rcpt_tos.append(address)
            return str(replies.RECIPIENT_OK)
        try:
            recipient = await self.recipients.lookup(address)
        except MailRejected as exc:
            return reply_for(exc)
        except SQLAlchemyError as exc:
            return reply_for(storage_error(exc))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        transaction.recipients.setdefault(recipient.user_id, recipient)
        return str(replies.RECIPIENT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        transaction = _transaction(envelope)
        if transaction.report:
            said = await self._report(envelope, raw)
            if not transaction.recipients or not said.startswith("250"):
                return said
        try:
            _check_content(raw, envelope.smtp_utf8)
            recipients = list(transaction.recipients.values())
            ip = _client_ip(session)
            decision, verdict = await self._decide(ip, session, envelope, raw, recipients)
            if not decision.keep:
                await self._remember_refusal(envelope, raw, recipients, decision, verdict)
                raise SenderRejected(replies.SENDER_NOT_VERIFIED._replace(text=decision.reason))
            results = (
                verdict.authentication_results(self.config.dropbox.hostname) if verdict else None
            )
            origins = (
                await asyncio.to_thread(self._origins, recipients, raw)
                if might_be_forwarded(raw)
                else {}
            )
            key = f"smtp:{uuid.uuid4().hex}"
            arrivals = [
                Arrival(
                    r.user_id,
                    Source.DROPBOX,
                    Keep.ALWAYS,
                    source_key=key,
                    auth_results=results,
                    quarantined=decision.quarantine,
                    origin=origins.get(r.user_id),
                    account_id=r.account_id,
                    new_key=True,
                )
                for r in recipients
            ]
            try:
                await self.committer.run(lambda c: [accept_in(c, raw, a) for a in arrivals])
            except SQLAlchemyError as exc:
                raise storage_error(exc) from exc
        except MailRejected as exc:
            log.info("dropbox: refused message from %s: %s", envelope.mail_from, exc.reply)
            return reply_for(exc)
        except Exception as exc:  # never a 500 or a 250 for what we could not do
            return reply_for(exc)
        self.wake()
        log.info(
            "dropbox: accepted %s bytes from <%s> for %s user(s)%s",
            len(raw),
            envelope.mail_from,
            len(recipients),
            " (quarantined)" if decision.quarantine else "",
        )
        return str(replies.QUARANTINED if decision.quarantine else replies.ACCEPTED)

    async def _report(self, envelope: Envelope, raw: bytes) -> str:
        """A DMARC aggregate report: kept for its domain's account (gateway.dmarc_reports),
        or dropped without a word when no account sends from that domain."""
        try:
            report = await asyncio.to_thread(dmarc_reports.report_of, raw)

            def keep() -> str:  # a few a day per domain: a transaction of its own
                with self.db.session() as session:
                    return dmarc_reports.store(session, report)

            outcome = await asyncio.to_thread(keep)
        except MailRejected as exc:
            log.info("dropbox: refused a DMARC report from <%s>: %s", envelope.mail_from, exc)
            return reply_for(exc)
        except SQLAlchemyError as exc:
            return reply_for(storage_error(exc))
        except Exception as exc:  # never a 500 or a 250 for what we could not do
            return reply_for(exc)
        log.info(
            "dropbox: DMARC report %s from %s about %s: %s",
            report.report_id,
            report.org_name,
            report.domain,
            outcome,
        )
        return str(replies.REPORT_RECEIVED)

    async def _remember_refusal(
        self,
        envelope: Envelope,
        raw: bytes,
        recipients: list[DropboxRecipient],
        decision: Decision,
        verdict: Verdict | None,
    ) -> None:
        """A short log of refused mail (gateway.refusals), so that "why is this mail
        not here?" has an answer; a failure to write it never changes the reply."""
        results = verdict.authentication_results(self.config.dropbox.hostname) if verdict else None
        try:
            await self.committer.run(
                lambda c: record_refusal(
                    c, recipients, envelope.mail_from or "", raw, decision.reason, results
                )
            )
        except Exception:
            log.exception("dropbox: the refusal was not logged")

    async def _decide(
        self,
        ip: str,
        session: Session,
        envelope: Envelope,
        raw: bytes,
        recipients: list[DropboxRecipient],
    ) -> tuple[Decision, Verdict | None]:
        policy = self.config.dropbox.policy
        if policy == "trust-network" and self._is_trusted(ip):
            return Decision(True), None
        authors = _header_from(raw)
        from_domain = domain_of(authors[0]) if authors else ""
        verdict = await asyncio.to_thread(
            self.verifier.verify,
            ip,
            session.host_name or "",
            envelope.mail_from or "",
            raw,
            from_domain,
        )
        candidates = [*authors]
        if envelope.mail_from:
            candidates += [a.normalized for a in parse_address_list(envelope.mail_from)]
        reason = await asyncio.to_thread(self._reason_to_refuse, recipients, candidates, verdict)
        if reason is None:
            return Decision(True), verdict
        if policy == "quarantine":
            return Decision(True, quarantine=True, reason=reason), verdict
        return Decision(False, reason=reason), verdict

    def _reason_to_refuse(
        self, recipients: list[DropboxRecipient], candidates: list[str], verdict: Verdict
    ) -> str | None:
        """None when, for every recipient's account, a sender address of one of its
        users verifies; else why not (blocking: database)."""
        with self.db.read() as session:
            for recipient in recipients:
                users = set(
                    session.scalars(
                        select(UserAddress.address).where(
                            UserAddress.account_id == recipient.account_id,
                            UserAddress.address.in_(candidates),
                        )
                    )
                )
                if not users:
                    return "Sender is not a user of this dropbox's account"
                if not any(verdict.verifies(address) for address in users):
                    return f"Sender not verified ({verdict.summary()})"
        return None

    def _origins(self, recipients: list[DropboxRecipient], raw: bytes) -> dict[int, Any]:
        """For each user who forwarded the message to their own dropbox (its visible
        recipients are only dropboxes and that user), the forwarded original's headers.
        Forwarded to someone else with the dropbox in Bcc: the outer message counts."""
        origin = find_forwarded(raw)
        if origin is None:
            return {}
        outer = parse(raw, self.config.addresses.local_part_case)
        visible = {a.normalized for name in ("to", "cc") for a in outer.addresses.get(name, ())}
        visible = {a for a in visible if domain_of(a) != self.recipients.domain}
        out: dict[int, Any] = {}
        with self.db.read() as session:
            for recipient in recipients:
                own = set(
                    session.scalars(
                        select(UserAddress.address).where(UserAddress.user_id == recipient.user_id)
                    )
                )
                if visible <= own:
                    out[recipient.user_id] = origin.as_json()
        return out

    def _is_trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


_HOOKS = sorted({n for c in DropboxHandler.__mro__ for n in vars(c) if n.startswith("handle_")})


def _transaction(envelope: Envelope) -> Transaction:
    state = getattr(envelope, "gateway", None)
    if state is None:
        state = Transaction()
        envelope.gateway = state  # type: ignore[attr-defined]
    assert isinstance(state, Transaction)
    return state


def _client_ip(session: Session) -> str:
    proxy = session.proxy_data
    if proxy is not None and getattr(proxy, "src_addr", None):
        return str(proxy.src_addr)
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _check_content(raw: bytes, smtp_utf8: bool) -> None:
    # SMTP smuggling (CVE-2023-51764 and kin): a bare CR or LF is never a line
    # end, so refuse it anywhere rather than guess what another hop would do.
    crlf = raw.count(b"\r\n")
    if (raw.count(b"\n") != crlf or raw.count(b"\r") != crlf) and _BARE_NEWLINE.search(raw):
        raise MessageRejected(replies.BARE_NEWLINE)
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    if not smtp_utf8 and not head.isascii():
        raise MessageRejected(replies.NEEDS_SMTPUTF8_HEADERS)  # RFC 6532 section 3.7


def _header_from(raw: bytes) -> list[str]:
    return [a.normalized for a in parse(raw).from_]


class DropboxServer:
    """The role: owns the listening socket(s) and builds one GatewaySMTP per connection."""

    def __init__(
        self,
        db: Database,
        config: Config,
        wake: Callable[[], None],
        *,
        gate: Gate | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """`gate`: the per-IP limits (default: this process's own); `sock`: a listening
        socket shared with other worker processes (default: bind [dropbox] listen)."""
        self.config = config
        self.handler = DropboxHandler(db, config, SenderVerifier(Resolver(config.dns)), wake)
        self.gate = gate or LocalGate(dropbox_limiter(config))
        self.sock = sock
        self.tls = server_context(config.tls_cert_file, config.tls_key_file)
        self.server: asyncio.Server | None = None

    def protocol(self) -> GatewaySMTP:
        dropbox = self.config.dropbox
        options: dict[str, Any] = {}
        if dropbox.proxy_protocol:
            options["proxy_protocol_timeout"] = 10
        return GatewaySMTP(
            self.handler,
            max_errors=dropbox.max_errors,
            gate=self.gate,
            data_size_limit=dropbox.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=dropbox.hostname,
            ident="CRM Email Gateway",
            tls_context=self.tls,
            timeout=dropbox.timeout,
            max_session_time=dropbox.max_session_time,
            loop=asyncio.get_running_loop(),
            **options,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self.server = await loop.create_server(self.protocol, sock=self.sock)
        else:
            where = self.config.dropbox.listen
            host, port = host_port(where)
            try:
                self.server = await loop.create_server(self.protocol, host, port)
            except OSError as exc:
                raise cannot_listen(self.config, "dropbox", "dropbox.listen", where, exc) from exc
        bound = self.server.sockets[0].getsockname()
        log.info("dropbox: listening on %s:%s", bound[0], bound[1])

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def run(self, stop: asyncio.Event) -> None:
        assert self.server is not None
        await stop.wait()
        self.server.close()
        await self.server.wait_closed()
        await asyncio.to_thread(self.handler.committer.close)


def build(ctx: RoleContext) -> DropboxServer:
    """The `dropbox` role (gateway.registry): stored mail wakes the pipeline."""
    return DropboxServer(
        ctx.db, ctx.config, ctx.stored, gate=ctx.gate, sock=ctx.listeners.get("dropbox")
    )
