"""The dropbox role running in-process on loopback, as the tests drive it."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

import pytest

from gateway.accounts import dropbox_address, get_user
from gateway.config import Config
from gateway.db import Database
from gateway.errors import Reply
from tests.helpers.mail import make_message


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


def expect(result: tuple[int, bytes], reply: Reply) -> None:
    code, text = result
    assert (code, text.decode()) == (reply.code, f"{reply.status} {reply.text}")


def send(
    dropbox: Dropbox, raw: bytes, mail_from: str, *rcpts: str, **kwargs: object
) -> dict[str, tuple[int, bytes]]:
    with dropbox.client() as client:
        return client.sendmail(mail_from, list(rcpts), raw, **kwargs)  # type: ignore[arg-type]


def refused(dropbox: Dropbox, raw: bytes, mail_from: str, *rcpts: str) -> tuple[int, str]:
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(dropbox, raw, mail_from, *rcpts)
    error = caught.value.smtp_error
    return caught.value.smtp_code, error.decode() if isinstance(error, bytes) else error


def from_bob(**kwargs: object) -> bytes:
    values: dict[str, object] = {"from_": "Bob <bob@acme.com>", "to": "carol@client.com"}
    values.update(kwargs)
    return make_message(**values)  # type: ignore[arg-type]
