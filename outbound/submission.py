"""The `submission` role: the SMTP server the CRM sends mail through (RFC 6409).

    EHLO -> STARTTLS (required on the plain listener) -> AUTH PLAIN|LOGIN (a user's
    API token or password; failures answered 535 5.7.8, slowed, and past
    [submission] auth_failures per IP or per user refused with 454 4.7.0)
    -> MAIL FROM: one of the signed-in user's addresses (553 5.7.1 else)
    -> RCPT (syntax, at most max_recipients) -> DATA: outbound.hygiene.prepare,
    header From the user's too -> gateway.mail_queue.enqueue_in, group-committed with
    other sessions' messages [commit] -> 250 Queued as N

On the implicit-TLS listener ([submission] tls_listen) every connection is TLS
from the first byte, so AUTH is offered there at once (aiosmtpd #281 hides it
when auth_require_tls is set on such a listener). AUTH is never accepted in
cleartext. aiosmtpd's own PLAIN and LOGIN are replaced: they ignore the SASL
authorization identity, leave the client without a reply when it cancels, and
call the authenticator on the event loop (a password hash takes ~50 ms).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from sqlalchemy import delete, func, select

from gateway import smtp_replies as replies
from gateway.addresses import parse_one
from gateway.config import Config, host_port
from gateway.db import Database
from gateway.errors import (
    MailRejected,
    MessageRejected,
    RecipientRejected,
    Reply,
    SenderRejected,
    TryLater,
)
from gateway.group_commit import GroupCommitter
from gateway.mail_queue import Sender, enqueue_in, sent_in_last_hour
from gateway.models import SignInFailure, UserAddress, utcnow
from gateway.role import RoleContext, cannot_listen
from gateway.sign_in import SMTP_FAILURES
from gateway.smtp_server import GatewayHandler, GatewaySMTP, reply_for, storage_error
from gateway.tls import server_context
from gateway.tokens import user_for_password
from outbound.hygiene import prepare

log = logging.getLogger(__name__)


class _QuietLoginData(logging.Filter):
    """aiosmtpd sets its deprecated Session.login_data on every AUTH and warns about
    its own doing each time; nothing here reads it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietLoginData())


@dataclass(frozen=True)
class Identity:
    """Who signed in: session.auth_data once AUTH succeeded."""

    user_id: int
    email: str
    addresses: frozenset[str]  # every address of theirs, normalized
    account_id: int


@dataclass
class AuthFailures:
    """Failed AUTH attempts per key (a client IP, a user name) in a sliding window,
    kept in the database (sign_in_failures, keys "smtp:<key>") so that every node
    counts them together: behind N nodes a guesser gets no more tries than behind
    one. Blocking calls: run them in a worker thread."""

    db: Database
    limit: int
    window: float

    def blocked(self, *keys: str) -> bool:
        since = utcnow() - timedelta(seconds=self.window)
        with self.db.read() as session:
            counts = session.execute(
                select(SignInFailure.key, func.count())
                .where(SignInFailure.key.in_([_key(k) for k in keys]), SignInFailure.at > since)
                .group_by(SignInFailure.key)
            )
            return any(count >= self.limit for _, count in counts)

    def failed(self, *keys: str) -> None:
        now = utcnow()
        with self.db.session() as session:
            session.add_all(SignInFailure(key=_key(k), at=now) for k in keys)
            session.execute(
                delete(SignInFailure).where(
                    SignInFailure.key.like(f"{SMTP_FAILURES}%"),
                    SignInFailure.at < now - timedelta(seconds=self.window),
                )
            )


def _key(key: str) -> str:
    return f"{SMTP_FAILURES}{key}"[:400]


class SubmissionSMTP(GatewaySMTP):
    def __init__(self, handler: SubmissionHandler, *, implicit_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, auth_required=True, auth_require_tls=True, **kwargs)
        if implicit_tls:
            # Every connection of this listener is TLS from its first byte; aiosmtpd
            # only knows STARTTLS and would neither offer nor take AUTH (#281).
            self._auth_require_tls = False
        self.submission = handler

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            answer = await self.challenge_auth("")
            if answer is MISSING:
                return _cancelled()
            blob = bytes(answer)
        else:
            decoded = _b64(args[1])
            if decoded is None:
                return _refused(replies.BAD_BASE64)
            blob = decoded
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return _refused(replies.BAD_PLAIN)
        authzid, login, password = parts
        if authzid and authzid.lower() != login.lower():
            # RFC 4616: acting as someone else. Not offered: refuse, and count it.
            await asyncio.to_thread(self._count_failure, login)
            return _refused(replies.AUTHZID_REFUSED)
        return await self._sign_in(login, password)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            answer = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if answer is MISSING:
                return _cancelled()
            login = bytes(answer)
        else:
            decoded = _b64(args[1])
            if decoded is None:
                return _refused(replies.BAD_BASE64)
            login = decoded
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return _cancelled()
        return await self._sign_in(login, bytes(password))

    async def _sign_in(self, login: bytes, password: bytes) -> AuthResult:
        handler, ip = self.submission, self._client_ip()
        user = login.decode("utf-8", "replace").strip().lower()
        if await asyncio.to_thread(handler.failures.blocked, ip, user):
            log.warning("submission: AUTH refused for %r from %s: too many failures", user, ip)
            return _refused(replies.AUTH_TOO_MANY_FAILURES)
        identity = await asyncio.to_thread(
            handler.authenticate, user, password.decode("utf-8", "replace")
        )
        if identity is None:
            await asyncio.to_thread(self._count_failure, login)
            log.info("submission: AUTH failed for %r from %s", user, ip)
            await asyncio.sleep(handler.config.submission.auth_failure_delay)
            return _refused(replies.AUTH_INVALID)
        log.info("submission: %s signed in from %s", identity.email, ip)
        return AuthResult(success=True, auth_data=identity, message=str(replies.AUTH_OK))

    def _count_failure(self, login: bytes) -> None:
        user = login.decode("utf-8", "replace").strip().lower()
        self.submission.failures.failed(self._client_ip(), user)

    def _client_ip(self) -> str:
        """The client's address: the one a load balancer's PROXY header gave, if any."""
        if self.session is None:
            return "None"
        proxy = self.session.proxy_data
        if proxy is not None and getattr(proxy, "src_addr", None):
            return str(proxy.src_addr)
        peer = self.session.peer
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _refused(reply: Reply) -> AuthResult:
    # handled=False with a message: aiosmtpd sends it (handled=True would send nothing).
    return AuthResult(success=False, handled=False, message=str(reply))


def _cancelled() -> AuthResult:
    # challenge_auth() answered already ("501 5.7.0 Auth aborted" for "*", 501 for bad
    # base64): nothing more to send.
    return AuthResult(success=False, handled=True)


class SubmissionHandler(GatewayHandler):
    def __init__(
        self, db: Database, config: Config, queued: Callable[[], None] = lambda: None
    ) -> None:
        self.db = db
        self.config = config
        self.queued = queued  # told once a message is committed (wakes the delivery role)
        self.committer = GroupCommitter(db.connection, name="submission-commit")
        submission = config.submission
        self.failures = AuthFailures(db, submission.auth_failures, submission.auth_failure_window)

    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: Any
    ) -> bool:
        """[submission] proxy_protocol: serve the connection when the balancer's header
        named the client's address."""
        return getattr(proxy_data, "src_addr", None) is not None

    def authenticate(self, login: str, password: str) -> Identity | None:
        """The user these credentials sign in (in a worker thread: a password hash)."""
        with self.db.session() as session:
            user = user_for_password(session, self.config, login, password)
            if user is None:
                return None
            addresses = session.scalars(
                select(UserAddress.address).where(UserAddress.user_id == user.id)
            ).all()
            return Identity(
                user.id, user.email, frozenset([user.email, *addresses]), user.account_id
            )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        try:
            identity = _identity(session)
            if address.strip() in ("", "<>"):  # aiosmtpd hands the null path on as "<>"
                raise SenderRejected(replies.NO_NULL_SENDER)
            sender = parse_one(address, self.config.addresses.local_part_case)
            if sender is None:
                raise SenderRejected(replies.BAD_SENDER)
            if sender.normalized not in identity.addresses:
                raise SenderRejected(replies.NOT_YOUR_ADDRESS)
            limit = self.config.submission.max_messages_per_hour
            if (
                limit
                and await asyncio.to_thread(sent_in_last_hour, self.db, identity.user_id) >= limit
            ):
                raise TryLater(replies.RATE_LIMITED)
        except MailRejected as exc:
            return reply_for(exc)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        try:
            if parse_one(address, self.config.addresses.local_part_case) is None:
                raise RecipientRejected(replies.BAD_RECIPIENT)
            if len(envelope.rcpt_tos) >= self.config.submission.max_recipients:
                raise TryLater(replies.TOO_MANY_RECIPIENTS)
        except MailRejected as exc:
            return reply_for(exc)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.RECIPIENT_OK)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            identity = _identity(session)
            raw = envelope.original_content
            assert isinstance(raw, bytes)
            outgoing = prepare(
                raw,
                smtp_utf8=envelope.smtp_utf8,
                local_part_case=self.config.addresses.local_part_case,
            )
            if any(s not in identity.addresses for s in outgoing.senders):
                raise MessageRejected(replies.NOT_YOUR_ADDRESS)
            assert envelope.mail_from is not None
            sender = Sender(identity.account_id, identity.user_id, identity.email)
            mail_from, recipients = envelope.mail_from, list(envelope.rcpt_tos)
            try:
                queued = await self.committer.run(
                    lambda c: enqueue_in(c, sender, mail_from, recipients, outgoing, "smtp")
                )
            except Exception as exc:
                raise storage_error(exc) from exc
        except MailRejected as exc:
            return reply_for(exc)
        self.queued()
        log.info(
            "submission: queued %s from %s for %s recipient(s)",
            queued.id,
            identity.email,
            len(envelope.rcpt_tos),
        )
        return str(replies.QUEUED.plus(f"as {queued.id} <{queued.message_id}>"))


def _identity(session: Session) -> Identity:
    identity = session.auth_data
    if not isinstance(identity, Identity):  # aiosmtpd asks for AUTH first; belt and braces
        raise SenderRejected(replies.AUTH_REQUIRED)
    return identity


class SubmissionServer:
    """The role: a listener with STARTTLS and, optionally, one with implicit TLS."""

    def __init__(
        self, db: Database, config: Config, queued: Callable[[], None] = lambda: None
    ) -> None:
        self.config = config
        self.handler = SubmissionHandler(db, config, queued)
        self.tls = server_context(config.tls_cert_file, config.tls_key_file)
        self.servers: dict[str, asyncio.Server] = {}

    def protocol(self, implicit_tls: bool) -> SubmissionSMTP:
        submission = self.config.submission
        options: dict[str, Any] = {}
        if submission.proxy_protocol and not implicit_tls:
            options["proxy_protocol_timeout"] = 10
        return SubmissionSMTP(
            self.handler,
            max_errors=submission.max_errors,
            data_size_limit=submission.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=submission.hostname,
            ident="CRM Email Gateway",
            implicit_tls=implicit_tls,
            tls_context=None if implicit_tls else self.tls,
            require_starttls=not implicit_tls,
            timeout=submission.timeout,
            loop=asyncio.get_running_loop(),
            **options,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        submission = self.config.submission
        listeners = [("listen", submission.listen, False)]
        if submission.tls_listen:
            listeners.append(("tls_listen", submission.tls_listen, True))
        for key, where, implicit in listeners:
            host, port = host_port(where)
            try:
                self.servers[key] = await loop.create_server(
                    functools.partial(self.protocol, implicit),
                    host,
                    port,
                    ssl=self.tls if implicit else None,
                )
            except OSError as exc:
                raise cannot_listen(
                    self.config, "submission", f"submission.{key}", where, exc
                ) from exc
            bound = self.servers[key].sockets[0].getsockname()
            kind = "implicit TLS" if implicit else "STARTTLS"
            log.info("submission: listening on %s:%s (%s)", bound[0], bound[1], kind)

    def port(self, key: str = "listen") -> int:
        return int(self.servers[key].sockets[0].getsockname()[1])

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        for server in self.servers.values():
            server.close()
        for server in self.servers.values():
            await server.wait_closed()
        await asyncio.to_thread(self.handler.committer.close)


def build(ctx: RoleContext) -> SubmissionServer:
    """The `submission` role (gateway.registry): queued mail wakes delivery."""
    return SubmissionServer(ctx.db, ctx.config, queued=ctx.queued)
