"""The dropbox role running in-process on loopback, as the tests drive it."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from gateway.accounts import dropbox_address, get_user
from gateway.config import Config
from gateway.db import Database


@dataclass
class Dropbox:
    port: int
    config: Config
    db: Database

    def address(self, email: str) -> str:
        with self.db.session() as session:
            return dropbox_address(self.config, get_user(session, self.config, email))

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        client.ehlo("client.test")
        return client
