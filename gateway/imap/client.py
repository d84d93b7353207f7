"""The signed-in IMAP session as the gateway uses it: the part of imapclient's
IMAPClient (and of the imaplib object under it) that the sync, the audit and the
copy to Sent call. gateway.imap.connection.connect() returns one; tests may pass
any object that has these."""

from __future__ import annotations

import imaplib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


class ImapClient(Protocol):
    # The imaplib connection under imapclient: read directly where imapclient's
    # own parsing costs too much (gateway.imap.rawfetch).
    _imap: imaplib.IMAP4

    def has_capability(self, capability: str) -> bool: ...

    def list_folders(
        self, directory: str = "", pattern: str = "*"
    ) -> list[tuple[tuple[bytes, ...], bytes, str]]: ...

    def select_folder(self, folder: str, readonly: bool = False) -> dict[bytes, Any]: ...

    def noop(self) -> tuple[bytes, list[Any]]: ...

    def append(
        self,
        folder: str,
        msg: bytes,
        flags: Sequence[bytes] = (),
        msg_time: datetime | None = None,
    ) -> bytes: ...

    def idle(self) -> Any: ...

    def idle_check(self, timeout: float | None = None) -> list[Any]: ...

    def idle_done(self) -> tuple[bytes, list[Any]]: ...

    def logout(self) -> bytes: ...

    def shutdown(self) -> None: ...
