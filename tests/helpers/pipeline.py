"""Pushing raw mail through the store and the pipeline, as the roles do."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.accounts import get_user
from gateway.config import Config
from gateway.contacts import add_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.models import (
    Account,
    Keep,
    Message,
    MessageContact,
    Sighting,
    Source,
)
from gateway.pipeline import Outcome, Pipeline
from gateway.store import Arrival, MessageStore


def push(
    db: Database,
    config: Config,
    raw: bytes,
    *,
    user: str = "bob@acme.com",
    source: Source = Source.IMPORT,
    keep: Keep = Keep.ALWAYS,
    key: str | None = None,
) -> Outcome:
    with db.session() as session:
        user_id = get_user(session, config, user).id
    accepted = MessageStore(db).accept(raw, Arrival(user_id, source, keep, source_key=key))
    outcomes = Pipeline(db, config).process([accepted.sighting_id])
    if outcomes:
        return outcomes[0]
    # Already finished earlier (the same arrival again): report it as stored.
    with db.session() as session:
        sighting = session.get_one(Sighting, accepted.sighting_id)
        return Outcome(sighting.id, sighting.state, sighting.message_id)


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def contact(db: Database, config: Config, account_id: int, *emails: str, name: str = "") -> int:
    with db.session() as session:
        account = session.get_one(Account, account_id)
        directory = AccountDirectory.load(session, account, config)
        return add_contact(session, directory, list(emails), name, "lower").id


def attached(db: Database, message_id: int) -> dict[int, set[str]]:
    with db.session() as session:
        rows = session.execute(
            select(MessageContact.contact_id, MessageContact.role).where(
                MessageContact.message_id == message_id
            )
        )
        out: dict[int, set[str]] = {}
        for contact_id, role in rows:
            out.setdefault(contact_id, set()).add(role)
        return out


def set_account(db: Database, account_id: int, **values: object) -> None:
    with db.session() as session:
        account = session.get_one(Account, account_id)
        for key, value in values.items():
            setattr(account, key, value)


def conversation_of(db: Database, message_id: int | None) -> int | None:
    with db.session() as session:
        return session.get_one(Message, message_id).conversation_id
