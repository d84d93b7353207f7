"""aiosmtpd glue shared by the gateway's SMTP servers, and the one SMTP reply mapping.

`reply_for(exc)` is the only place an exception becomes an SMTP reply.
`GatewaySMTP` closes the gaps of stock aiosmtpd that are policy for us
(its known traps): a second STARTTLS inside TLS, no cap on errors per connection,
replies without enhanced status codes although ENHANCEDSTATUSCODES is
advertised, source routes, and no per-IP connection limits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from psycopg.errors import DiskFull
from sqlalchemy.exc import OperationalError

from gateway import smtp_replies as replies
from gateway.errors import MailRejected, TryLater
from gateway.smtp_data import TOO_LONG, TOO_MUCH, read_data
from gateway.smtp_limits import Gate

log = logging.getLogger(__name__)

# Default enhanced status for aiosmtpd's own replies that lack one (RFC 3463).
_DEFAULT_STATUS = {
    221: "2.0.0",
    250: "2.0.0",
    251: "2.1.5",
    421: "4.4.2",
    450: "4.2.0",
    451: "4.3.0",
    452: "4.3.1",
    454: "4.7.0",
    500: "5.5.2",
    501: "5.5.4",
    502: "5.5.1",
    503: "5.5.1",
    504: "5.5.4",
    530: "5.7.0",
    550: "5.0.0",
    552: "5.3.4",
    553: "5.1.3",
    554: "5.0.0",
    555: "5.5.4",
}
_HAS_STATUS = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(\s|$)")
_SOURCE_ROUTE = re.compile(r"^\s*<\s*@")


# A plain path `<local@domain>` (dot-atoms of common characters), optionally
# followed by spaces and parameters: what nearly every client sends. The email
# package's full parser answers anything else (GatewaySMTP._getaddr).
_PLAIN_PATH = re.compile(
    r"<((?P<local>[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    r"[ \t]*+(?![(])"
)


# Temporary replies that count as errors all the same: 454 (AUTH refused after too
# many failures, TLS not available) would otherwise let a client go on guessing
# on one connection for ever.
_COUNTED_4XX = frozenset({"454"})

_UNSAFE_REPLY = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
MAX_REPLY = 500  # RFC 5321 4.5.3.1.5: reply lines stay short


def reply_for(exc: BaseException) -> str:
    """The SMTP reply for an exception raised while handling a command.

    Texts may carry values from the client or from DNS (a reason naming a
    domain): control characters are replaced so a reply is always one line.
    """
    if isinstance(exc, MailRejected):
        return _UNSAFE_REPLY.sub(" ", str(exc.reply))[:MAX_REPLY]
    log.exception("unexpected error while handling SMTP", exc_info=exc)
    return str(replies.TRY_LATER)


def storage_error(exc: Exception) -> TryLater:
    """The reply for a failed commit: 452 4.3.1 when the disk or database is full."""
    # The first error may be hidden behind a later one (a savepoint that SQLite
    # already rolled back on SQLITE_FULL): look down the chain.
    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).lower()
        if isinstance(seen, OperationalError | DiskFull) and (
            "full" in text or "no space" in text or isinstance(seen, DiskFull)
        ):
            log.error("storage full: %s", seen)
            return TryLater(replies.STORAGE_FULL)
        seen = seen.__cause__ or seen.__context__
    log.error("storage error: %s", exc)
    return TryLater(replies.TRY_LATER)


def with_status(line: str) -> str:
    """Add an enhanced status code to a final reply line that lacks one."""
    if len(line) < 4 or line[3] != " " or not line[:3].isdigit() or _HAS_STATUS.match(line):
        return line
    code = int(line[:3])
    status = _DEFAULT_STATUS.get(code)
    if status is None:
        return line  # 220 greeting, 334, 354: no status codes
    return f"{line[:4]}{status} {line[4:]}"


def without_status(line: str) -> str:
    """A reply line without its enhanced status code (for a client that said HELO)."""
    found = _HAS_STATUS.match(line)
    if found is None:
        return line
    return line[:4] + line[found.end() :]


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with the gateway's connection policy."""

    def __init__(
        self,
        handler: Any,
        *,
        max_errors: int,
        gate: Gate | None = None,
        max_session_time: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_session_time = max_session_time
        self._deadline: asyncio.TimerHandle | None = None
        self.max_errors = max_errors
        self.gate = gate
        self._errors = 0
        self._admitted_ip: str | None = None
        self._in_ehlo = False
        self._closing = False

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ finds its smtp_* and auth_* methods with dir() and
        # inspect.getmembers() on every connection, a getattr of each of some 200
        # attributes (a fifth of a connection's CPU): list just those, once per class.
        return _command_names(type(self))

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # Same answer as aiosmtpd's (a test holds them equal), without its
        # per-call class definition and full RFC 5322 parse for plain paths.
        plain = _PLAIN_PATH.match(arg)
        if plain is None:
            try:
                return super()._getaddr(arg)
            except Exception:
                # The email package's parser fails on some junk ("<", "a@[") with
                # IndexError or AttributeError: a syntax error, not a 500.
                return None, None
        if self.local_part_limit and len(plain["local"]) > self.local_part_limit:
            return None, None
        return plain[1], arg[plain.end() :]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        # aiosmtpd starts a new Session after STARTTLS (RFC 3207 4.2), and with it
        # forgets what the load balancer's PROXY header said: the client's address
        # would become the balancer's for SPF, the limits and the log. Keep it.
        proxied = None if first or self.session is None else self.session.proxy_data
        super().connection_made(transport)
        if proxied is not None and self.session is not None:
            self.session.proxy_data = proxied
        if first and self.max_session_time is not None:
            self._deadline = self.loop.call_later(self.max_session_time, self._session_expired)

    async def _handle_client(self) -> None:
        # Admission before the greeting; behind a proxy, the client's address
        # comes with the PROXY header (admit_proxied).
        if self.gate is not None and self._proxy_timeout is None and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else "?"
            if not await self._admit(ip):
                log.warning("refusing connection from %s: over the per-IP limits", ip)
                if self.transport is not None:
                    self.transport.write(f"{replies.TOO_MANY_CONNECTIONS}\r\n".encode())  # type: ignore[attr-defined]
                    self.transport.close()
                return
        await super()._handle_client()

    async def _admit(self, ip: str) -> bool:
        assert self.gate is not None
        if not await self.gate.admit(ip):
            return False
        if self.transport is None:  # the client left while we asked
            self.gate.release(ip)
            return False
        self._admitted_ip = ip
        return True

    async def admit_proxied(self, ip: str) -> bool:
        """Per-IP limits for the client a PROXY header names; False: refused."""
        if self.gate is None:
            return True
        if await self._admit(ip):
            return True
        log.warning("refusing proxied connection from %s: over the per-IP limits", ip)
        await super().push(str(replies.TOO_MANY_CONNECTIONS))
        return False

    def _session_expired(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            log.info("closing a connection that reached the session time limit")
            self.transport.write(f"{replies.SESSION_TOO_LONG}\r\n".encode())  # type: ignore[attr-defined]
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._admitted_ip is not None and self.gate is not None:
            self.gate.release(self._admitted_ip)
            self._admitted_ip = None
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        # RFC 5321 4.2: say 421 before hanging up on an idle client.
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.IDLE_TIMEOUT}\r\n".encode())  # type: ignore[attr-defined]
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        # RFC 2034: enhanced codes once the client has said EHLO (HELO clients get none).
        session = self.session
        if session is not None and session.extended_smtp:
            if not self._in_ehlo:
                text = with_status(text)
        elif session is not None and session.host_name:
            text = without_status(text)
        await super().push(text)
        if (text[:1] == "5" or text[:3] in _COUNTED_4XX) and not self._closing:
            self._errors += 1
            if self._errors >= self.max_errors:
                self._closing = True
                await super().push(str(replies.TOO_MANY_ERRORS))
                if self.transport is not None:
                    self.transport.close()

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            await self.push(str(replies.TLS_ACTIVE))
            return
        await super().smtp_STARTTLS(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's DATA with the message read by gateway.smtp_data.read_data
        # (large pieces instead of a loop round per line); the rest as aiosmtpd.
        if self._decode_data:
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push(str(replies.NEED_RECIPIENT))
            return
        if arg:
            await self.push(str(replies.DATA_SYNTAX))
            return
        await self.push(str(replies.START_DATA))
        try:
            content, problem = await read_data(
                self._reader, self.data_size_limit, self.line_length_limit
            )
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if problem == TOO_LONG:
            await self.push(str(replies.LINE_TOO_LONG))
        elif problem == TOO_MUCH:
            await self.push(str(replies.DATA_TOO_MUCH))
        if problem:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(str(replies.OK) if status is MISSING else status)

    async def smtp_RCPT(self, arg: str | None) -> None:
        rest = arg or ""
        if rest[:3].upper() == "TO:" and _SOURCE_ROUTE.match(rest[3:]):
            await self.push(str(replies.SOURCE_ROUTE))
            return
        await super().smtp_RCPT(arg)


_COMMAND_NAMES: dict[type, list[str]] = {}


def _command_names(cls: type) -> list[str]:
    names = _COMMAND_NAMES.get(cls)
    if names is None:
        names = sorted(
            {n for c in cls.__mro__ for n in vars(c) if n.startswith(("smtp_", "auth_"))}
        )
        _COMMAND_NAMES[cls] = names
    return names


class GatewayHandler:
    """What the handlers of the gateway's SMTP roles share."""

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return enhanced_ehlo(responses)


# aiosmtpd reads the signature of handle_EHLO for every connection (to tell its two
# forms apart): computed once here, inspect.signature() returns it at once.
GatewayHandler.handle_EHLO.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    GatewayHandler.handle_EHLO
)


def enhanced_ehlo(responses: list[str]) -> list[str]:
    """EHLO keywords aiosmtpd does not add itself (it supports both)."""
    last = responses[-1]
    extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
    return [*responses[:-1], *extra, last]
