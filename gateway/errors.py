"""The gateway's exception tree. Each type says what the caller does next.

    GatewayError
    ├── ConfigError(key, source, reason)   -> CLI message, exit 2
    ├── InputError(where, reason)          -> CLI message naming the file/line, exit 1
    │   └── CsvImportError(path, rows)     -> every bad row listed, nothing imported
    ├── NotFound(what)                     -> CLI message, exit 1
    └── Conflict(what)                     -> CLI message, exit 1

Later roles add MailRejected (SMTP replies) and PeerError (remote servers).
"""

from __future__ import annotations

from collections.abc import Sequence


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
