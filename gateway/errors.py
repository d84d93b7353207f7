"""The gateway's exception tree. Each type says what the caller does next.

    GatewayError
    ├── ConfigError(key, source, reason)   -> CLI message, exit 2
    ├── InputError(where, reason)          -> CLI message naming the file/line, exit 1
    │   └── CsvImportError(path, rows)     -> every bad row listed, nothing imported
    ├── NotFound(what)                     -> CLI message, exit 1
    ├── Conflict(what)                     -> CLI message, exit 1
    └── MailRejected(reply)                -> gateway.smtp_server.reply_for(): the SMTP reply
        ├── RecipientRejected              550 5.1.1 | 550 5.7.1 | 452 4.5.3
        ├── SenderRejected                 550 5.7.1 | 501 5.1.7 | 553 5.6.7
        ├── MessageRejected                552 5.3.4 | 550 5.6.0 | 550 5.6.7
        └── TryLater                       451 4.3.0 | 452 4.3.1 | 421 4.7.0

Later roles add PeerError (remote servers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


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


class NotFound(GatewayError):
    pass


class Conflict(GatewayError):
    pass


class Reply(NamedTuple):
    """An SMTP reply: code, enhanced status (RFC 3463) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


class MailRejected(GatewayError):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__(str(reply))


class RecipientRejected(MailRejected):
    pass


class SenderRejected(MailRejected):
    pass


class MessageRejected(MailRejected):
    pass


class TryLater(MailRejected):
    pass
