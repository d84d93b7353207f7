"""One SMTP transaction to one server, with a reply for every recipient (smtplib, in the
delivery role's worker threads).

`transmit()` never raises for what a remote server or the network does: a refused
connection, a timeout or a dropped session become a temporary reply (4xx) for every
recipient not yet settled, so the queue defers them; only a server's own 5xx is
permanent. A message is sent exactly as stored (CRLF lines, no rewriting), so its
DKIM signature stays valid.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TLS_REQUIRED, TLS_OPPORTUNISTIC, TLS_IMPLICIT = "required", "opportunistic", "implicit"
TLS_NONE = "none"  # only to networks in [security] allowed_private_networks
UNREACHED = 421  # our code for "no answer": a connection that failed or broke (4.4.1)


@dataclass(frozen=True)
class Result:
    code: int
    text: str

    @property
    def temporary(self) -> bool:
        return not 200 <= self.code < 300 and not 500 <= self.code < 600

    @property
    def unreached(self) -> bool:
        """The server was not reached, or the session broke (not the server's word)."""
        return self.code == UNREACHED

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class Server:
    host: str  # the name (TLS checks it)
    address: str  # where to connect (checked by gateway.netguard)
    port: int
    tls: str  # required | opportunistic | implicit
    verify: bool = True
    login: tuple[str, str] | None = None  # AUTH PLAIN/LOGIN: user, password
    xoauth2: tuple[str, str] | None = None  # AUTH XOAUTH2: user, access token


class Sessions:
    """Signed-in SMTP sessions kept open between messages to the same server: a TCP
    and TLS handshake and AUTH cost more than sending a 10 KB message. A session is
    reused only while it is younger than IDLE seconds idle. After a transaction that
    ended with the reply to DATA the server has reset it already (RFC 5321 4.1.4);
    one left open (every RCPT refused) is RSET first, and kept only if that works."""

    IDLE = 30.0

    def __init__(self, per_server: int = 4) -> None:
        self.per_server = per_server
        self._idle: dict[Server, list[tuple[float, smtplib.SMTP]]] = defaultdict(list)
        self._lock = threading.Lock()

    def take(self, server: Server) -> smtplib.SMTP | None:
        now = time.monotonic()
        with self._lock:
            waiting = self._idle[server]
            stale = [c for since, c in waiting if now - since > self.IDLE]
            fresh = [(since, c) for since, c in waiting if now - since <= self.IDLE]
            self._idle[server] = fresh
            client = fresh.pop()[1] if fresh else None
        for old in stale:
            quit_quietly(old)
            old.close()
        return client

    def give(self, server: Server, client: smtplib.SMTP, reset: bool = True) -> None:
        code = 250
        if reset:
            try:
                code, _ = client.rset()
            except (smtplib.SMTPException, OSError):
                code = 0
        with self._lock:
            waiting = self._idle[server]
            if code == 250 and len(waiting) < self.per_server:
                waiting.append((time.monotonic(), client))
                return
        client.close()

    def close(self) -> None:
        with self._lock:
            every = [c for waiting in self._idle.values() for _, c in waiting]
            self._idle.clear()
        for client in every:
            quit_quietly(client)
            client.close()


def transmit(
    server: Server,
    helo: str,
    mail_from: str,
    recipients: Sequence[str],
    data: bytes,
    timeout: float,
    sessions: Sessions | None = None,
) -> dict[str, Result]:
    """{recipient: the server's final word on it}. With `sessions`, an open session to
    the same server is used if there is one (and a fresh one if the server had
    dropped it), and kept for the next message."""
    results: dict[str, Result] = {}
    client: smtplib.SMTP | None = None
    reused = False
    try:
        client = sessions.take(server) if sessions is not None else None
        reused = client is not None
        if client is None:
            client = _open(server, helo, timeout)
        try:
            results, ended = _transaction(client, mail_from, recipients, data)
        except _Dropped:
            if not reused:
                raise
            client.close()  # a kept session the server had closed: once more, fresh
            client = _open(server, helo, timeout)
            results, ended = _transaction(client, mail_from, recipients, data)
        if sessions is not None:
            sessions.give(server, client, reset=not ended)
        else:
            quit_quietly(client)
            client.close()
        client = None
    except smtplib.SMTPAuthenticationError as exc:
        # The user's password or token was refused: theirs to fix, the mail waits.
        reply = Result(454, f"4.7.0 sign-in refused: {_result(exc.smtp_code, exc.smtp_error)}")
        for recipient in recipients:
            results.setdefault(recipient, reply)
    except smtplib.SMTPResponseException as exc:
        reply = _result(exc.smtp_code, exc.smtp_error)
        for recipient in recipients:
            results.setdefault(recipient, reply)
    except (smtplib.SMTPException, OSError, ssl.SSLError, _Dropped) as exc:
        reason = exc.__cause__ if isinstance(exc, _Dropped) and exc.__cause__ else exc
        reply = Result(UNREACHED, f"4.4.1 {_reason(reason)}")
        for recipient in recipients:
            results.setdefault(recipient, reply)
    finally:
        if client is not None:
            client.close()
    return results


class _Dropped(Exception):
    """The session broke at MAIL: nothing of this message was accepted yet."""


def _open(server: Server, helo: str, timeout: float) -> smtplib.SMTP:
    client = connect_to(server, helo, timeout)
    try:
        sign_in(client, server)
    except BaseException:
        client.close()
        raise
    return client


def sign_in(client: smtplib.SMTP, server: Server) -> None:
    """AUTH with the server's login (PLAIN or LOGIN) or XOAUTH2 token, if it has one."""
    if server.login is not None:
        client.login(*server.login)
    elif server.xoauth2 is not None:
        user, token = server.xoauth2
        response = f"user={user}\x01auth=Bearer {token}\x01\x01"
        client.auth("XOAUTH2", lambda challenge=None: response)


def _transaction(
    client: smtplib.SMTP, mail_from: str, recipients: Sequence[str], data: bytes
) -> tuple[dict[str, Result], bool]:
    """(each recipient's result, whether the server ended the transaction: the reply
    to DATA, or MAIL refused)."""
    results: dict[str, Result] = {}
    options = []
    utf8 = not (mail_from.isascii() and all(r.isascii() for r in recipients))
    head = data.split(b"\r\n\r\n", 1)[0]
    if utf8 or not head.isascii():
        if not client.has_extn("smtputf8"):
            failed = Result(553, "5.6.7 the receiving server does not accept SMTPUTF8 mail")
            return dict.fromkeys(recipients, failed), True
        options.append("SMTPUTF8")
    if not data.isascii() and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    try:
        code, text = client.mail(mail_from, options)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise _Dropped() from exc
    if code == 421:
        raise _Dropped() from smtplib.SMTPServerDisconnected(_result(code, text).text)
    if code >= 300:
        return dict.fromkeys(recipients, _result(code, text)), True
    accepted = []
    for recipient in recipients:
        code, text = client.rcpt(recipient)
        if code < 300:
            accepted.append(recipient)
        else:
            results[recipient] = _result(code, text)
    if not accepted:
        return results, False  # MAIL accepted, no DATA: the transaction is still open
    code, text = client.data(data)
    for recipient in accepted:
        results[recipient] = _result(code, text)
    return results, True


class _Plain(smtplib.SMTP):
    """smtplib to the checked address, while the name stays the host's (SNI, certificate)."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        self.address = address
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.address, port), timeout)


class _Implicit(smtplib.SMTP_SSL):
    def __init__(self, address: str, **kwargs: Any) -> None:
        self.address = address
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection((self.address, port), timeout)
        return self.context.wrap_socket(raw, server_hostname=host)


def connect_to(server: Server, helo: str, timeout: float) -> smtplib.SMTP:
    """A session to `server` after EHLO, and STARTTLS when its `tls` asks for it."""
    context = ssl.create_default_context()
    if not server.verify or server.tls == TLS_OPPORTUNISTIC:
        # Opportunistic TLS for MX hosts (RFC 3207 7): encrypt what can be, never
        # refuse to deliver over a certificate a receiving MX made up itself.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client: smtplib.SMTP
    if server.tls == TLS_IMPLICIT:
        client = _Implicit(server.address, local_hostname=helo, timeout=timeout, context=context)
    else:
        client = _Plain(server.address, local_hostname=helo, timeout=timeout)
    client._host = server.host  # type: ignore[union-attr]  # STARTTLS: SNI, name checked
    code, text = client.connect(server.host, server.port)
    if code != 220:
        client.close()
        raise smtplib.SMTPConnectError(code, text)
    try:
        client.ehlo(helo)
        if server.tls not in (TLS_IMPLICIT, TLS_NONE):
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo(helo)
            elif server.tls == TLS_REQUIRED:
                raise smtplib.SMTPNotSupportedError(f"{server.host} does not offer STARTTLS")
    except BaseException:
        client.close()
        raise
    return client


def _result(code: int, text: bytes | str) -> Result:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return Result(code, " ".join(words.split())[:500])


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def quit_quietly(client: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        client.quit()
