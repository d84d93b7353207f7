"""RCPT policy of the dropbox: only its own addresses, never a relay.

token@<dropbox domain>            -> DropboxRecipient (the user owning the token)
unknown or rotated token          -> 550 5.1.1
any other domain, percent hack, bang path, quoted local part holding @,
source route (refused earlier by GatewaySMTP)                  -> 550 5.7.1
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from gateway import smtp_replies as replies
from gateway.addresses import normalize
from gateway.config import Config
from gateway.db import Database
from gateway.errors import RecipientRejected
from gateway.models import User

TOKEN_CACHE_SECONDS = 1.0
_TOKEN = r"(?P<token>[a-z2-7]{16,64})"
_BY_TOKEN = select(User.id, User.account_id).where(User.dropbox_token == bindparam("b_token"))


@dataclass(frozen=True)
class DropboxRecipient:
    user_id: int
    account_id: int
    address: str


class RecipientPolicy:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.domain = (normalize(f"x@{config.dropbox.domain}") or "").rpartition("@")[2]
        self.reports = f"{config.dns_checks.dmarc_reports_local.lower()}@{self.domain}"
        self._cache: dict[str, tuple[DropboxRecipient, float]] = {}
        prefix, _, suffix = config.dropbox.address_format.lower().partition("{token}")
        self._local = re.compile(f"^{re.escape(prefix)}{_TOKEN}{re.escape(suffix)}$")

    def is_reports(self, address: str) -> bool:
        """Whether `address` is the DMARC reports address ([dns_checks]
        dmarc_reports_local at the dropbox domain), which takes reports from anyone."""
        return normalize(address) == self.reports

    def token_of(self, address: str) -> str:
        """The dropbox token in `address`, or RecipientRejected."""
        local, at, _ = address.rpartition("@")
        if not at:
            raise RecipientRejected(replies.RELAY_DENIED)
        if any(c in local for c in '%!@"') or local.startswith("@"):
            raise RecipientRejected(replies.RELAY_DENIED)  # routing tricks, never relayed
        key = normalize(address)
        if key is None:
            raise RecipientRejected(replies.BAD_RECIPIENT)
        if key.rpartition("@")[2] != self.domain:
            raise RecipientRejected(replies.RELAY_DENIED)
        match = self._local.match(local.lower())
        if match is None:
            raise RecipientRejected(replies.UNKNOWN_RECIPIENT)
        return match.group("token")

    async def lookup(self, address: str) -> DropboxRecipient:
        """resolve() with a short-lived cache of known tokens, off the event loop.

        A rotated token stops working within TOKEN_CACHE_SECONDS in a running
        server (a busy dropbox sees the same token many times a second).
        """
        token = self.token_of(address)
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return DropboxRecipient(cached[0].user_id, cached[0].account_id, address)
        recipient = await asyncio.to_thread(self.resolve, address)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (recipient, now + TOKEN_CACHE_SECONDS)
        return recipient

    def resolve(self, address: str) -> DropboxRecipient:
        """Blocking (database): run it off the event loop."""
        token = self.token_of(address)
        with self.db.read() as session:
            row = session.connection().execute(_BY_TOKEN, {"b_token": token}).first()
        if row is None:
            raise RecipientRejected(replies.UNKNOWN_RECIPIENT)
        return DropboxRecipient(row.id, row.account_id, address)
