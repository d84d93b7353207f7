"""Before a mailbox is saved: can the gateway send through its SMTP server as the user?

`mailbox_server()` turns a mailbox's SMTP settings into the server that the mailbox
route sends to (the host checked by gateway.netguard, TLS as its security says,
signed in with the password or an XOAUTH2 access token); `check_sending()` opens a
session to it, signs in and says QUIT, and raises MailboxError naming the step that
failed ("smtp_connect" or "smtp_sign_in") and why, in words a person can act on: a
refused password says what the provider asks for instead (an app password).
"""

from __future__ import annotations

import smtplib
import ssl

from gateway.config import Config
from gateway.errors import InputError
from gateway.imap.connection import (
    AUTH,
    PROTOCOL,
    REFUSED,
    TIMEOUT,
    TLS,
    UNREACHABLE,
    MailboxError,
)
from gateway.netguard import check_host, in_networks
from gateway.providers import Server as Endpoint
from gateway.providers import preset
from gateway.resolver import Resolver
from outbound.smtp_client import (
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_REQUIRED,
    Server,
    connect_to,
    quit_quietly,
    sign_in,
)

CONNECT, SIGN_IN = "smtp_connect", "smtp_sign_in"


def mailbox_server(
    config: Config,
    endpoint: Endpoint,
    username: str,
    auth: str,
    secret: str,
    verify: bool,
    resolver: Resolver | None = None,
) -> Server:
    """The mailbox's SMTP server, its address checked; InputError when it is not allowed.

    `secret` is the password, or for auth "oauth2" a current access token."""
    allowed = config.security.allowed_private_networks
    if resolver is None and config.dns.nameservers:
        resolver = Resolver(config.dns)
    address = check_host(endpoint.host, endpoint.port, allowed, what="SMTP host", resolver=resolver)
    if endpoint.security == "none" and not in_networks(address, allowed):
        raise InputError(
            "SMTP host",
            f"SMTP without TLS is allowed only to networks in [security] "
            f"allowed_private_networks; {endpoint.host} ({address}) is not one",
        )
    tls = {"tls": TLS_IMPLICIT, "starttls": TLS_REQUIRED}.get(endpoint.security, TLS_NONE)
    verify = verify and config.imap.tls_verify
    host, port = endpoint.host, endpoint.port
    if auth == "oauth2":
        return Server(host, address, port, tls, verify, xoauth2=(username, secret))
    return Server(host, address, port, tls, verify, login=(username, secret))


def check_sending(
    config: Config,
    endpoint: Endpoint,
    username: str,
    auth: str,
    secret: str,
    verify: bool,
    provider: str = "other",
) -> None:
    """Connect and sign in to the mailbox's SMTP server, or MailboxError with the step."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        server = mailbox_server(config, endpoint, username, auth, secret, verify)
    except InputError as exc:
        raise MailboxError(REFUSED, str(exc), step=CONNECT) from exc
    timeout = config.outbound.timeout
    try:
        client = connect_to(server, config.outbound.helo_name, timeout)
    except smtplib.SMTPConnectError as exc:
        message = f"{where} refused the session: {_words(exc)}"
        raise MailboxError(UNREACHABLE, message, step=CONNECT) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise MailboxError(TLS, f"{where} does not offer STARTTLS", step=CONNECT) from exc
    except ssl.SSLError as exc:
        raise MailboxError(TLS, f"TLS with {where} failed: {_reason(exc)}", step=CONNECT) from exc
    except TimeoutError as exc:
        message = f"{where} did not answer in {timeout:g} s"
        raise MailboxError(TIMEOUT, message, step=CONNECT) from exc
    except (smtplib.SMTPException, OSError) as exc:
        message = f"cannot reach {where}: {_reason(exc)}"
        raise MailboxError(UNREACHABLE, message, step=CONNECT) from exc
    try:
        sign_in(client, server)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailboxError(AUTH, _refused(auth, username, provider, exc), step=SIGN_IN) from exc
    except smtplib.SMTPNotSupportedError as exc:
        message = f"{where} offers no sign-in (AUTH) this gateway can use"
        raise MailboxError(PROTOCOL, message, step=SIGN_IN) from exc
    except smtplib.SMTPException as exc:
        message = f"sign-in to {where} failed: {_words(exc)}"
        raise MailboxError(PROTOCOL, message, step=SIGN_IN) from exc
    except OSError as exc:
        message = f"{where} broke off the sign-in: {_reason(exc)}"
        raise MailboxError(UNREACHABLE, message, step=SIGN_IN) from exc
    finally:
        quit_quietly(client)
        client.close()


def _refused(auth: str, username: str, provider: str, exc: smtplib.SMTPAuthenticationError) -> str:
    said = _words(exc)
    if auth == "oauth2":
        return f"the SMTP server refused the OAuth2 access token of {username} ({said})"
    message = f"the SMTP server refused the user name or password for {username} ({said})"
    try:
        return message + preset(provider).password_advice
    except InputError:
        return message


def _words(exc: smtplib.SMTPException) -> str:
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", b"")
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return " ".join(f"{code or ''} {words}".split())[:300] or type(exc).__name__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
