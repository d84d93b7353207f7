"""Auto-create (an account setting, off by default): new To/Cc/Bcc addresses of a
message become contacts, never the account's users, dropbox addresses, no-reply
style senders or blocked domains (AccountDirectory.can_auto_create), at most
[contacts] auto_create_max_per_message of them."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from gateway.addresses import Address
from gateway.config import Config
from gateway.contacts import create_contact
from gateway.directory import AccountDirectory
from gateway.models import Role
from gateway.parsing import ParsedMessage
from gateway.pipeline.writes import Writes

log = logging.getLogger(__name__)
AUTO_CREATE_ROLES = (Role.TO, Role.CC, Role.BCC)


def creatable(
    config: Config,
    roles: list[tuple[Role, Address]],
    matched: dict[str, int],
    directory: AccountDirectory,
    parsed: ParsedMessage,
) -> list[Address]:
    if not directory.auto_create:
        return []
    out: dict[str, Address] = {}
    for role, address in roles:
        key = address.normalized
        new = role in AUTO_CREATE_ROLES and key not in matched and key not in out
        if new and directory.can_auto_create(key):
            out[key] = address
    cap = config.contacts.auto_create_max_per_message
    if len(out) > cap:
        log.warning(
            "message %s names %s new addresses; auto-creating only the first %s",
            parsed.message_id,
            len(out),
            cap,
        )
    return list(out.values())[:cap]


def auto_create(
    session: Session,
    writes: Writes,
    directory: AccountDirectory,
    creatable: list[Address],
    message_id: int,
    parsed: ParsedMessage,
) -> dict[str, int]:
    created: dict[str, int] = {}
    if creatable:
        writes.flush(session)  # keep events in order; attach reads addresses
    for address in creatable:
        contact = create_contact(
            session,
            directory,
            [(address.normalized, address.addr_spec)],
            name=address.display_name,
            source="auto",
            source_message_id=message_id,
        )
        created[address.normalized] = contact.id
        log.info(
            "auto-created contact %s <%s> from message %s (Message-ID %s)",
            contact.id,
            address.normalized,
            message_id,
            parsed.message_id,
        )
    return created
