"""Contacts: create, remove, attach past mail, CSV import (all or nothing) and export.

Creating a contact (by hand, by import or automatically from mail) attaches
every stored message that already names one of its addresses, so mail pushed
before the contact existed lands on its record by itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, selectinload

from gateway import events
from gateway.addresses import Address, parse_one
from gateway.db import insert_ignore
from gateway.directory import AccountDirectory
from gateway.errors import Conflict, CsvImportError, InputError, NotFound
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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ContactInput:
    emails: tuple[str, ...]
    name: str = ""


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)


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
) -> Contact:
    """Create a contact from (normalized, display) pairs and attach its past mail."""
    contact = Contact(
        account_id=directory.account_id,
        name=name,
        source=source,
        source_message_id=source_message_id,
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
    )
    attach_existing(session, directory.account_id, contact.id, [k for k, _ in keys])
    return contact


def add_contact(
    session: Session, directory: AccountDirectory, emails: Sequence[str], name: str, case: str
) -> Contact:
    parsed = [check_address(directory, e, case) for e in emails]
    keys = [(a.normalized, a.addr_spec) for a in parsed]
    taken = match_contacts(session, directory.account_id, [k for k, _ in keys])
    if taken:
        address = sorted(taken)[0]
        raise Conflict(f"{address} already belongs to contact {taken[address]}")
    return create_contact(session, directory, _unique(keys), name=name)


def remove_contact(session: Session, account_id: int, email: str, case: str) -> Contact:
    contact = find_contact(session, account_id, email, case)
    events.emit(
        session,
        account_id,
        events.CONTACT_REMOVED,
        contact_id=contact.id,
        emails=[e.address for e in contact.emails],
    )
    # Attached mail stays stored; only the links to this contact go.
    session.execute(delete(MessageContact).where(MessageContact.contact_id == contact.id))
    session.delete(contact)
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


def _unique(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for key, display in keys:
        seen.setdefault(key, display)
    return list(seen.items())


# --- CSV -------------------------------------------------------------------------------

CSV_COLUMNS = ("name", "email", "other_emails")


def import_csv(
    session: Session, directory: AccountDirectory, path: Path, case: str
) -> ImportResult:
    """Import contacts from CSV: all rows or none. Columns: email, name, other_emails."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    headers = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in headers:
        raise InputError(str(path), 'line 1: the header row must have an "email" column')
    reader.fieldnames = headers
    result = ImportResult(ignored_columns=[h for h in headers if h not in CSV_COLUMNS])
    errors: list[tuple[int, str]] = []
    planned: list[tuple[int, list[tuple[str, str]], str]] = []
    first_line: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"not valid CSV: {exc}"))
            break
        line = reader.line_num
        if None in row:
            errors.append((line, "more fields than columns in the header"))
            continue
        values = {k: _uncell(v or "") for k, v in row.items()}
        raw_emails = [values.get("email", ""), *_split(values.get("other_emails", ""))]
        if not any(e.strip() for e in raw_emails):
            if any(v.strip() for v in values.values()):
                errors.append((line, "no email address"))
            continue
        keys: list[tuple[str, str]] = []
        for email in raw_emails:
            if not email.strip():
                continue
            try:
                address = check_address(directory, email, case)
            except InputError as exc:
                errors.append((line, f"{exc.where}: {exc.reason}"))
                continue
            key = address.normalized
            if key in first_line and first_line[key] != line:
                errors.append((line, f"{email.strip()} is also on line {first_line[key]}"))
                continue
            first_line[key] = line
            keys.append((key, address.addr_spec))
        planned.append((line, _unique(keys), values.get("name", "").strip()))
    if errors:
        raise CsvImportError(str(path), errors)
    for line, keys, name in planned:
        _apply_row(session, directory, line, keys, name, result, errors)
    if errors:
        # Rows that clash with contacts already stored: raise, and the caller's
        # transaction rolls back everything imported so far.
        raise CsvImportError(str(path), errors)
    return result


def _apply_row(
    session: Session,
    directory: AccountDirectory,
    line: int,
    keys: list[tuple[str, str]],
    name: str,
    result: ImportResult,
    errors: list[tuple[int, str]],
) -> None:
    existing = match_contacts(session, directory.account_id, [k for k, _ in keys])
    owners = set(existing.values())
    if len(owners) > 1:
        errors.append((line, "its addresses belong to different existing contacts"))
        return
    if not owners:
        create_contact(session, directory, keys, name=name, source="import")
        result.created += 1
        return
    contact = session.get(Contact, owners.pop())
    assert contact is not None
    changed = False
    if name and name != contact.name:
        contact.name = name
        changed = True
    new_keys = [(k, d) for k, d in keys if k not in existing]
    if new_keys:
        for key, display in new_keys:
            contact.emails.append(
                ContactEmail(account_id=directory.account_id, address=key, display=display)
            )
        session.flush()
        attach_existing(session, directory.account_id, contact.id, [k for k, _ in new_keys])
        changed = True
    if changed:
        result.updated += 1
    else:
        result.unchanged += 1


def export_csv(session: Session, account_id: int, out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*CSV_COLUMNS, "source", "created_at"])
    count = 0
    for contact in list_contacts(session, account_id):
        emails = [e.display for e in contact.emails]
        writer.writerow(
            [
                _cell(contact.name),
                _cell(emails[0] if emails else ""),
                _cell(";".join(emails[1:])),
                contact.source,
                contact.created_at.isoformat(),
            ]
        )
        count += 1
    return count


def _cell(value: str) -> str:
    """Neutralize spreadsheet formulas; import_csv reverses it."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _uncell(value: str) -> str:
    if value.startswith("'") and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.replace(",", ";").split(";") if part.strip()]
