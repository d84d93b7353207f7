"""Opening an IMAP session safely, and saying what went wrong in words a person can act on.

- The host is resolved and checked (gateway.netguard) and the socket goes to
  that checked address; TLS still verifies the certificate for the host name.
- Every read of a literal is bounded ([imap] max_message_size): a hostile
  server announcing {9999999999} fails that mailbox, it cannot make the
  process allocate it (CPython gh-119511).
- Failures become MailboxError with a kind: "auth" (wrong credentials: the
  mailbox needs a person), "tls", "unreachable", "timeout", "refused" (the
  host check) or "protocol"; and the step that failed: "imap_connect" (reaching
  the server, TLS, its greeting) or "imap_sign_in" (LOGIN or AUTHENTICATE).
  Sending's own check (outbound.smtp_check) adds "smtp_connect" and "smtp_sign_in".
"""

from __future__ import annotations

import ast
import contextlib
import imaplib
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from gateway.config import Config
from gateway.errors import GatewayError, InputError
from gateway.imap import compress
from gateway.netguard import check_host, in_networks
from gateway.providers import preset
from gateway.resolver import Resolver

AUTH, TLS, UNREACHABLE, TIMEOUT, REFUSED, PROTOCOL, THROTTLED = (
    "auth",
    "tls",
    "unreachable",
    "timeout",
    "refused",
    "protocol",
    "throttled",
)
# A server's way of saying "not now" (Gmail: too many simultaneous connections;
# Yahoo: [LIMIT] rate limit hit; Microsoft: request is throttled, suggested backoff
# time N ms): never a wrong password.
_THROTTLED = re.compile(
    r"\[(LIMIT|THROTTLED|UNAVAILABLE|INUSE)\]|too many (simultaneous )?connections|rate limit|"
    r"throttl",
    re.IGNORECASE,
)
_SUGGESTED = re.compile(r"backoff time:?\s*(\d+)\s*(ms|milliseconds)\b", re.IGNORECASE)
# The steps of connecting a mailbox, in order, as a person reads them.
STEPS = {
    "imap_connect": "IMAP connect",
    "imap_sign_in": "IMAP sign-in",
    "smtp_connect": "SMTP connect",
    "smtp_sign_in": "SMTP sign-in",
}


class MailboxError(GatewayError):
    """A mailbox could not be used; `kind` says whether a person must act ("auth")."""

    def __init__(
        self,
        kind: str,
        message: str,
        retry_after: float | None = None,
        step: str = "imap_connect",
    ) -> None:
        self.kind = kind
        self.retry_after = retry_after  # seconds the server asked us to wait
        self.step = step  # one of STEPS
        super().__init__(message)

    @property
    def needs_person(self) -> bool:
        return self.kind in (AUTH, REFUSED)


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # tls | starttls | none
    username: str
    provider: str = "other"
    tls_verify: bool = True
    auth: str = "password"  # password | oauth2


def tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:  # a self-signed server the user vouched for (--tls-no-verify)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Bounded:
    """Mixed into imaplib's classes: connect to the checked address, bound every read."""

    address: str
    limit: int
    port: int
    file: Any

    def _connect_checked(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.address, self.port), timeout)

    def read(self, size: int) -> bytes:
        if size > self.limit:
            raise imaplib.IMAP4.abort(
                f"server sent a literal of {size} bytes, over the limit of {self.limit}"
            )
        data: bytes = self.file.read(size)
        return data


class _Plain(_Bounded, imaplib.IMAP4):
    def __init__(self, host: str, port: int, address: str, limit: int, timeout: float) -> None:
        self.address, self.limit = address, limit
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return self._connect_checked(timeout)


class _Tls(_Bounded, imaplib.IMAP4):
    def __init__(
        self,
        host: str,
        port: int,
        address: str,
        limit: int,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self.address, self.limit, self.context = address, limit, context
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._connect_checked(timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


class SafeIMAPClient(IMAPClient):  # type: ignore[misc]
    """IMAPClient over _Plain/_Tls (imapclient builds its imaplib object in _create_IMAP4)."""

    def __init__(
        self,
        settings: ImapSettings,
        address: str,
        limit: int,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self._settings, self._address, self._limit = settings, address, limit
        self._context = context
        super().__init__(
            settings.host,
            port=settings.port,
            ssl=settings.security == "tls",
            ssl_context=context,
            timeout=timeout,
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        timeout = float(getattr(self._timeout, "connect", None) or 60)
        if self._settings.security == "tls":
            return _Tls(self.host, self.port, self._address, self._limit, timeout, self._context)
        return _Plain(self.host, self.port, self._address, self._limit, timeout)


def connect(settings: ImapSettings, secret: str, config: Config) -> SafeIMAPClient:
    """A logged-in IMAP session, or MailboxError saying why not."""
    try:
        address = check_host(
            settings.host,
            settings.port,
            config.security.allowed_private_networks,
            what="IMAP host",
            resolver=Resolver(config.dns) if config.dns.nameservers else None,
        )
    except InputError as exc:
        raise MailboxError(REFUSED, str(exc)) from exc
    if settings.security == "none" and not in_networks(
        address, config.security.allowed_private_networks
    ):
        raise MailboxError(
            REFUSED,
            f"IMAP without TLS is allowed only to networks in [security] "
            f"allowed_private_networks; {settings.host} ({address}) is not one",
        )
    context = tls_context(settings.tls_verify and config.imap.tls_verify)
    where = f"{settings.host}:{settings.port}"
    try:
        client = SafeIMAPClient(
            settings, address, config.imap.max_message_size, config.imap.timeout, context
        )
    except ssl.SSLError as exc:
        raise MailboxError(TLS, f"TLS with {where} failed: {_reason(exc)}") from exc
    except TimeoutError as exc:
        raise MailboxError(TIMEOUT, f"{where} did not answer in {config.imap.timeout:g} s") from exc
    except OSError as exc:
        raise MailboxError(UNREACHABLE, f"cannot reach {where}: {_reason(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        raise MailboxError(PROTOCOL, f"{where} does not speak IMAP: {exc}") from exc
    try:
        if settings.security == "starttls":
            _starttls(client, context, where)
        login(client, settings, secret)
        # imapclient turns imaplib's debug output into a logger call per line read;
        # at thousands of lines per header scan that costs real time: off.
        client._imap.debug = 0
        if config.imap.compress and client.has_capability("COMPRESS=DEFLATE"):
            _compress(client)
        if client.has_capability("CONDSTORE"):
            # SELECT then reports HIGHESTMODSEQ: an unchanged folder needs no search.
            with contextlib.suppress(IMAPClientError, imaplib.IMAP4.error):
                client.enable("CONDSTORE")
        return client
    except BaseException:
        close(client)
        raise


imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


def _starttls(client: IMAPClient, context: ssl.SSLContext, where: str) -> None:
    try:
        client.starttls(context)
    except ssl.SSLError as exc:
        raise MailboxError(TLS, f"TLS with {where} failed: {_reason(exc)}") from exc
    except TimeoutError as exc:
        raise MailboxError(TIMEOUT, f"{where} stopped answering at STARTTLS") from exc
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        raise MailboxError(TLS, f"{where} refused STARTTLS: {_text(exc)}") from exc
    except OSError as exc:
        raise MailboxError(UNREACHABLE, f"{where} closed the connection: {_reason(exc)}") from exc


def _compress(client: IMAPClient) -> None:
    """COMPRESS DEFLATE; a server that then refuses it is used uncompressed."""
    try:
        typ, _ = client._imap._simple_command("COMPRESS", "DEFLATE")
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error:
        return
    if typ == "OK":
        compress.start(client._imap)


def login(client: IMAPClient, settings: ImapSettings, secret: str) -> None:
    try:
        _login(client, settings, secret)
    except MailboxError as exc:
        exc.step = "imap_sign_in"
        raise


def _login(client: IMAPClient, settings: ImapSettings, secret: str) -> None:
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.auth == "oauth2":
            client.oauth2_login(settings.username, secret)
        else:
            client.login(settings.username, secret)
    except LoginError as exc:
        text = _text(exc)
        if _THROTTLED.search(text):
            raise throttled(where, text) from exc
        raise MailboxError(AUTH, _auth_message(settings, text)) from exc
    except ssl.SSLError as exc:
        raise MailboxError(TLS, f"TLS with {where} failed: {_reason(exc)}") from exc
    except TimeoutError as exc:
        raise MailboxError(TIMEOUT, f"{where} stopped answering during sign-in") from exc
    except (OSError, IMAPClientError, imaplib.IMAP4.error) as exc:
        raise MailboxError(PROTOCOL, f"sign-in to {where} failed: {_text(exc)}") from exc


def throttled(where: str, text: str) -> MailboxError:
    found = _SUGGESTED.search(text)
    wait = int(found.group(1)) / 1000 if found else None
    return MailboxError(THROTTLED, f"{where} asks to wait: {text.strip()}", retry_after=wait)


def is_throttling(text: str) -> bool:
    return _THROTTLED.search(text) is not None


def _auth_message(settings: ImapSettings, server_text: str) -> str:
    reason = server_text.strip() or "no reason given"
    if settings.auth == "oauth2":
        return f"the server refused the OAuth2 access token of {settings.username} ({reason})"
    message = f"the server refused the user name or password for {settings.username} ({reason})"
    return message + preset(settings.provider).password_advice


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def _text(exc: BaseException) -> str:
    """The server's words: imapclient wraps imaplib's bytes as str(b'...')."""
    value = exc.args[0] if exc.args else str(exc)
    if isinstance(value, str) and value[:2] in ("b'", 'b"') and value[-1:] == value[1]:
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def close(client: IMAPClient) -> None:
    """LOGOUT if the session still answers; the socket is closed either way
    (imaplib's logout() leaves it open when LOGOUT itself fails)."""
    try:
        with contextlib.suppress(Exception):
            client.logout()
    finally:
        with contextlib.suppress(Exception):
            client.shutdown()
