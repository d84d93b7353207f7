"""The dropbox's short log of refused mail: one row per recipient user, kept KEEP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Connection, delete, insert

from gateway.models import DropboxRefusal, utcnow
from gateway.parsing import parse

KEEP = timedelta(days=7)


class Recipient(Protocol):
    @property
    def user_id(self) -> int: ...

    @property
    def account_id(self) -> int: ...


def record_refusal(
    connection: Connection,
    recipients: Sequence[Recipient],
    mail_from: str,
    raw: bytes,
    reason: str,
    auth_results: str | None,
) -> None:
    parsed = parse(raw)
    now = utcnow()
    connection.execute(delete(DropboxRefusal).where(DropboxRefusal.refused_at < now - KEEP))
    connection.execute(
        insert(DropboxRefusal),
        [
            {
                "account_id": r.account_id,
                "user_id": r.user_id,
                "refused_at": now,
                "mail_from": mail_from[:998],
                "message_id_header": (parsed.message_id or "")[:998] or None,
                "subject": parsed.subject[:1000],
                "reason": reason[:2000],
                "auth_results": auth_results,
            }
            for r in recipients
        ],
    )
