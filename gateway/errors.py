"""The gateway's exception tree. Each type says what the caller does next; the SMTP
reply of a MailRejected comes from gateway.smtp_server.reply_for(), the HTTP
problem of any of them from admin.problems, the CLI's exit code from gateway.cli.

    GatewayError
    ├── ConfigError(key, source, reason)   CLI exit 2; HTTP 500
    ├── InputError(where, reason)          CLI exit 1 naming the file/line; HTTP 422
    │   ├── CsvImportError(path, rows)     every bad row listed, nothing imported
    │   ├── FieldError(name, reason)       a field of an API request (outbound.compose)
    │   ├── InvalidFields(errors)          a request's fields that do not validate
    │   ├── InvalidCursor(reason)          HTTP 400: a page cursor changed, forged or stale
    │   └── UnsupportedMedia               HTTP 415
    ├── NotFound(what)                     HTTP 404
    ├── Conflict(what)                     HTTP 409
    ├── NotSignedIn(what)                  HTTP 401 with WWW-Authenticate
    ├── Forbidden(what)                    HTTP 403
    ├── TooManyAttempts(what, retry_after) HTTP 429: failed sign-ins, paused a while
    ├── Unavailable(what)                  HTTP 503: a dependency is away, try again
    ├── MailRejected(reply)                the SMTP reply; HTTP per its status (from_reply)
    │   ├── RecipientRejected              550 5.1.1 | 550 5.7.1 | 501 5.1.3   (5xx only)
    │   ├── SenderRejected                 550 5.7.1 | 501 5.1.7 | 553 5.6.7 ...
    │   ├── MessageRejected                552 5.3.4 | 550 5.6.0 | 554 5.6.0 ...
    │   │   ├── NotAReport(why)            550 5.6.0: not a DMARC report (gateway.dmarc_reports)
    │   │   └── ReportTooBig               552 5.3.4: a report that inflates past the bound
    │   └── TryLater                       451 4.3.0 | 452 4.3.1 | 452 4.5.3 | 451 4.7.1 (4xx only)
    ├── DnsTempError                       DNS timed out or SERVFAIL (gateway.resolver)
    ├── TokenError(kind)                   an OAuth2 token endpoint said no (gateway.oauth2)
    ├── MailboxError(kind)                 an IMAP mailbox cannot be used (gateway.imap.connection)
    ├── LeaseLost                          another node holds the work now (gateway.leases)
    ├── SigningError                       a DKIM signature failed (outbound.dkim_sign)
    └── StartFailed                        a worker could not start (gateway.supervisor)

A MailRejected's class and its reply agree: a 4xx reply is raised as TryLater
(the client tries again), a 5xx as one of the others (it gives up).

The database's own errors stay SQLAlchemy's (OperationalError when it is away).
A background role's round survives ROUND_FAILURES: it logs them and tries again at
its next round, so a database restart costs a round, not the worker process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.exc import SQLAlchemyError


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    def __init__(self, key: str, source: str, reason: str) -> None:
        self.key, self.source, self.reason = key, source, reason
        super().__init__(f"config error in {source}: {key}: {reason}")


class InputError(GatewayError):
    def __init__(self, where: str, reason: str) -> None:
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")


class CsvImportError(InputError):
    def __init__(self, path: str, rows: Sequence[tuple[int, str]]) -> None:
        self.rows = list(rows)
        lines = "\n".join(f"  {path}:{line}: {why}" for line, why in self.rows)
        super().__init__(path, f"{len(self.rows)} bad row(s), nothing imported:\n{lines}")


class InvalidFields(InputError):
    """A request whose fields do not validate: each one at fault, with why."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        named = ", ".join(e["field"] or "(body)" for e in errors)
        super().__init__("request", f"invalid request: {named}")

    def __str__(self) -> str:
        return self.reason


class InvalidCursor(InputError):
    """A page cursor this API did not give, or gave for another query."""

    def __init__(self, reason: str) -> None:
        super().__init__("cursor", reason)


class UnsupportedMedia(InputError):
    """A request body of a kind this endpoint does not take."""

    def __init__(self, reason: str) -> None:
        super().__init__("Content-Type", reason)


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class NotSignedIn(GatewayError):
    """No credentials, or credentials that are unknown or revoked."""


class Forbidden(GatewayError):
    """Signed in, but not allowed to do this."""


class TooManyAttempts(GatewayError):
    """Too many failed sign-ins: paused for `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """Something the answer needs (the database) does not answer: try again shortly."""


class Reply(NamedTuple):
    """An SMTP reply: code, enhanced status (RFC 3463; none for 220, 235, 334 and 354)
    and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        if not self.status:
            return f"{self.code} {self.text}"
        return f"{self.code} {self.status} {self.text}"

    def plus(self, detail: str) -> Reply:
        """The same reply with `detail` after its text ("Queued" -> "Queued as 7")."""
        return self._replace(text=f"{self.text} {detail}")


class MailRejected(GatewayError):
    temporary = False  # a 5xx: the client gives up

    def __init__(self, reply: Reply) -> None:
        if (reply.code // 100 == 4) != self.temporary or reply.code // 100 not in (4, 5):
            kind = "4xx" if self.temporary else "5xx"
            raise TypeError(f"{type(self).__name__} takes a {kind} reply, not {reply}")
        self.reply = reply
        super().__init__(str(reply))


class RecipientRejected(MailRejected):
    pass


class SenderRejected(MailRejected):
    pass


class MessageRejected(MailRejected):
    pass


class TryLater(MailRejected):
    temporary = True  # a 4xx: the client tries again later


# What a background role's round survives (module docstring).
ROUND_FAILURES: tuple[type[Exception], ...] = (GatewayError, SQLAlchemyError)
