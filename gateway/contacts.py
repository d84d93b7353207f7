"""Contacts: create, remove, attach past mail, CSV import (all or nothing) and export.

Creating a contact (by hand, by import or automatically from mail) attaches
every stored message that already names one of its addresses, so mail pushed
before the contact existed lands on its record by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, selectinload

from gateway import events
from gateway.addresses import Address, parse_one
from gateway.db import insert_ignore
from gateway.directory import AccountDirectory
from gateway.errors import Conflict, InputError, NotFound
from gateway.matching import match_contacts
from gateway.models import (
    Contact,
    ContactEmail,
    MessageAddress,
    MessageContact,
    ScannedAddress,
    ScannedMessage,
    table_of,
)

CHUNK = 500
# Spreadsheet formula triggers (OWASP CSV injection).


@dataclass(frozen=True)
class ContactInput:
    emails: tuple[str, ...]
    name: str = ""


def check_address(directory: AccountDirectory, email: str, case: str) -> Address:
    """`email` parsed, or InputError saying why it cannot be a contact."""
    email = email.strip()
    address = parse_one(email, case)
    if address is None:
        raise InputError(email or "(empty)", "not a valid email address")
    if directory.is_user(address.normalized):
        raise InputError(email, "is an address of a user of this account, not a contact")
    if directory.is_dropbox(address.normalized):
        raise InputError(email, "is a dropbox address")
    return address


def create_contact(
    session: Session,
    directory: AccountDirectory,
    keys: Sequence[tuple[str, str]],
    name: str = "",
    source: str = "manual",
    source_message_id: int | None = None,
    source_meeting_id: int | None = None,
) -> Contact:
    """Create a contact from (normalized, display) pairs and attach its past mail."""
    contact = Contact(
        account_id=directory.account_id,
        name=name,
        source=source,
        source_message_id=source_message_id,
        source_meeting_id=source_meeting_id,
    )
    contact.emails = [
        ContactEmail(account_id=directory.account_id, address=key, display=display)
        for key, display in keys
    ]
    session.add(contact)
    session.flush()
    events.emit(
        session,
        directory.account_id,
        events.CONTACT_CREATED,
        contact_id=contact.id,
        emails=[k for k, _ in keys],
        source=source,
        source_message_id=source_message_id,
        source_meeting_id=source_meeting_id,
    )
    attach_existing(session, directory.account_id, contact.id, [k for k, _ in keys])
    return contact


def add_contact(
    session: Session,
    directory: AccountDirectory,
    emails: Sequence[str],
    name: str,
    case: str,
    source_message_id: int | None = None,
) -> Contact:
    """A contact added by a person (from a message they chose, if given)."""
    parsed = [check_address(directory, e, case) for e in emails]
    keys = [(a.normalized, a.addr_spec) for a in parsed]
    taken = match_contacts(session, directory.account_id, [k for k, _ in keys])
    if taken:
        address = sorted(taken)[0]
        raise Conflict(f"{address} already belongs to contact {taken[address]}")
    return create_contact(
        session, directory, unique(keys), name=name, source_message_id=source_message_id
    )


def remove_contact(session: Session, account_id: int, email: str, case: str) -> Contact:
    contact = find_contact(session, account_id, email, case)
    delete_contact(session, contact)
    return contact


def delete_contact(session: Session, contact: Contact) -> None:
    """The contact goes; its mail stays stored, only the links to it go."""
    events.emit(
        session,
        contact.account_id,
        events.CONTACT_REMOVED,
        contact_id=contact.id,
        emails=[e.address for e in contact.emails],
    )
    session.execute(delete(MessageContact).where(MessageContact.contact_id == contact.id))
    session.delete(contact)


def get_contact(session: Session, account_id: int, contact_id: int) -> Contact:
    """The account's contact `contact_id` (another account's is not found)."""
    contact = session.scalar(
        select(Contact)
        .where(Contact.id == contact_id, Contact.account_id == account_id)
        .options(selectinload(Contact.emails))
    )
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def update_contact(
    session: Session,
    directory: AccountDirectory,
    contact: Contact,
    case: str,
    name: str | None = None,
    emails: Sequence[str] | None = None,
) -> Contact:
    """A new name and/or a new set of addresses (one already another contact's is a
    Conflict); mail naming an added address attaches, links stay for removed ones."""
    if name is not None:
        contact.name = name
    if emails is not None:
        keys = unique(
            (a.normalized, a.addr_spec) for a in (check_address(directory, e, case) for e in emails)
        )
        if not keys:
            raise InputError("emails", "a contact needs at least one address")
        taken = match_contacts(session, directory.account_id, [k for k, _ in keys])
        others = {a: c for a, c in taken.items() if c != contact.id}
        if others:
            address = sorted(others)[0]
            raise Conflict(f"{address} already belongs to contact {others[address]}")
        wanted = dict(keys)
        for row in list(contact.emails):
            if row.address not in wanted:
                contact.emails.remove(row)
        have = {row.address for row in contact.emails}
        added = [(k, d) for k, d in keys if k not in have]
        for key, display in added:
            contact.emails.append(
                ContactEmail(account_id=directory.account_id, address=key, display=display)
            )
        session.flush()
        attach_existing(session, directory.account_id, contact.id, [k for k, _ in added])
    session.flush()
    events.emit(
        session,
        contact.account_id,
        events.CONTACT_UPDATED,
        contact_id=contact.id,
        name=contact.name,
        emails=[e.address for e in contact.emails],
    )
    return contact


def find_contact(session: Session, account_id: int, email: str, case: str) -> Contact:
    parsed = parse_one(email, case)
    key = parsed.normalized if parsed else None
    contact = None
    if key is not None:
        contact = session.scalar(
            select(Contact)
            .join(ContactEmail)
            .where(ContactEmail.account_id == account_id, ContactEmail.address == key)
            .options(selectinload(Contact.emails))
        )
    if contact is None:
        raise NotFound(f"no contact with address {email}")
    return contact


def list_contacts(session: Session, account_id: int) -> Sequence[Contact]:
    return (
        session.scalars(
            select(Contact)
            .where(Contact.account_id == account_id)
            .options(selectinload(Contact.emails))
            .order_by(Contact.id)
        )
        .unique()
        .all()
    )


def attach_existing(
    session: Session, account_id: int, contact_id: int, addresses: Iterable[str]
) -> list[int]:
    """Link every stored message naming `addresses` to the contact; new message ids."""
    addresses = list(addresses)
    already = set(
        session.scalars(
            select(MessageContact.message_id).where(MessageContact.contact_id == contact_id)
        )
    )
    rows: list[dict[str, object]] = []
    for start in range(0, len(addresses), CHUNK):
        found = session.execute(
            select(MessageAddress.message_id, MessageAddress.role).where(
                MessageAddress.account_id == account_id,
                MessageAddress.address.in_(addresses[start : start + CHUNK]),
            )
        )
        rows += [{"message_id": m, "contact_id": contact_id, "role": role} for m, role in found]
    insert_ignore(
        session,
        table_of(MessageContact),
        rows,
        ["message_id", "contact_id", "role"],
    )
    want_scanned(session, account_id, addresses)
    new = sorted({int(str(r["message_id"])) for r in rows} - already)
    for message_id in new:
        events.emit(
            session,
            account_id,
            events.MESSAGE_ATTACHED,
            message_id=message_id,
            contact_ids=[contact_id],
        )
    return new


def want_scanned(session: Session, account_id: int, addresses: Sequence[str]) -> None:
    """Mailbox messages whose headers named these addresses (scanned when they were no
    contact yet): to be fetched by the IMAP sync without reading the folder again."""
    for start in range(0, len(addresses), CHUNK):
        named = select(ScannedAddress.scanned_id).where(
            ScannedAddress.account_id == account_id,
            ScannedAddress.address.in_(addresses[start : start + CHUNK]),
        )
        session.execute(
            update(ScannedMessage)
            .where(ScannedMessage.account_id == account_id, ScannedMessage.id.in_(named))
            .values(wanted=True)
            .execution_options(synchronize_session=False)
        )


def unique(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for key, display in keys:
        seen.setdefault(key, display)
    return list(seen.items())


# --- CSV -------------------------------------------------------------------------------
