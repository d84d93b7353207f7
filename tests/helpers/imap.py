"""IMAP sync helpers: contacts to match, a mailbox connected to the test Dovecot,
a sync pass, the subjects attached to contacts, and the imap role served."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from gateway.config import Config
from gateway.contacts import add_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.models import (
    Account,
    Mailbox,
    MailboxFolder,
    Message,
    MessageContact,
)
from gateway.registry import build_roles
from gateway.role import RoleContext
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from inbound.imap.service import sync_now
from inbound.imap.sync import SyncReport
from tests.helpers.mail import make_message
from tests.helpers.roles import running
from tests.peers.dovecot import ImapUser


def contacts(db: Database, config: Config, account_id: int, *addresses: str) -> None:
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        for address in addresses:
            add_contact(session, directory, [address], address.split("@")[0], "lower")


def connect_mailbox(
    db: Database, config: Config, user: ImapUser, password: str | None = None, **extra: object
) -> Mailbox:
    fields: dict[str, object] = {
        "email": "bob@acme.com",
        "provider": "other",
        "imap_host": "127.0.0.1",
        "imap_port": user.server.port,
        "imap_security": "none",
        "username": user.name,
    }
    request = MailboxRequest(**{**fields, **extra})  # type: ignore[arg-type]
    vault = Vault.load(config.secret_key_file)
    return add_mailbox(db, config, vault, request, password or user.password)


def sync(db: Database, config: Config) -> SyncReport:
    return sync_now(db, config, Vault.load(config.secret_key_file), "bob@acme.com")


def attached_subjects(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.scalars(
            select(Message.subject).join(MessageContact).distinct().order_by(Message.subject)
        )
        return list(rows)


def fill(user: ImapUser, folder: str, total: int, matched: set[int], tag: str) -> None:
    messages = []
    for i in range(total):
        sender = "carol@client.com" if i in matched else f"stranger{i}@nowhere.example"
        messages.append(
            make_message(from_=sender, subject=f"{tag} {i}", message_id=f"<{tag}{i}@x.example>")
        )
    user.append(folder, *messages)


@contextmanager
def serving(db: Database, config: Config) -> Iterator[None]:
    """The imap and pipeline roles in a thread of their own, stopped on exit."""
    roles = build_roles(["imap", "pipeline"], RoleContext(db, config))
    with running(roles):
        yield


def initial_sync_done(db: Database) -> bool:
    with db.session() as session:
        folders = session.scalars(select(MailboxFolder)).all()
        return len(folders) == 2 and all(f.initial_done for f in folders)
