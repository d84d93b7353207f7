"""RCPT policy of the dropbox: only its own addresses, never a relay.

token@<dropbox domain>            -> DropboxRecipient (the user owning the token)
unknown or rotated token          -> 550 5.1.1
any other domain, percent hack, bang path, quoted local part holding @,
source route (refused earlier by GatewaySMTP)                  -> 550 5.7.1
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from gateway import smtp_replies as replies
from gateway.addresses import normalize
from gateway.config import Config
from gateway.db import Database
from gateway.errors import RecipientRejected
from gateway.models import User

_TOKEN = r"(?P<token>[a-z2-7]{16,64})"


@dataclass(frozen=True)
class DropboxRecipient:
    user_id: int
    account_id: int
    address: str


class RecipientPolicy:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.domain = (normalize(f"x@{config.dropbox.domain}") or "").rpartition("@")[2]
        prefix, _, suffix = config.dropbox.address_format.lower().partition("{token}")
        self._local = re.compile(f"^{re.escape(prefix)}{_TOKEN}{re.escape(suffix)}$")

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

    def resolve(self, address: str) -> DropboxRecipient:
        """Blocking (database): run it off the event loop."""
        token = self.token_of(address)
        with self.db.session() as session:
            row = session.execute(
                select(User.id, User.account_id).where(User.dropbox_token == token)
            ).first()
        if row is None:
            raise RecipientRejected(replies.UNKNOWN_RECIPIENT)
        return DropboxRecipient(row.id, row.account_id, address)
