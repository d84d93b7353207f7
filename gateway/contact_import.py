"""Contacts in bulk: rows imported all or none (from a CSV file or an API request),
and the CSV export, its cells neutralised against spreadsheet formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from gateway.contacts import attach_existing, check_address, create_contact, list_contacts, unique
from gateway.directory import AccountDirectory
from gateway.errors import CsvImportError, InputError
from gateway.matching import match_contacts
from gateway.models import (
    Contact,
    ContactEmail,
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)


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
    rows: list[Row] = []
    errors: list[tuple[int, str]] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"not valid CSV: {exc}"))
            break
        if None in row:
            errors.append((reader.line_num, "more fields than columns in the header"))
            continue
        values = {k: _uncell(v or "") for k, v in row.items()}
        emails = [values.get("email", ""), *_split(values.get("other_emails", ""))]
        if not any(e.strip() for e in emails) and not any(v.strip() for v in values.values()):
            continue  # an empty row
        rows.append(Row(reader.line_num, emails, values.get("name", "").strip()))
    result = import_rows(session, directory, rows, case, str(path), errors)
    result.ignored_columns = [h for h in headers if h not in CSV_COLUMNS]
    return result


@dataclass(frozen=True)
class Row:
    number: int  # the line of a file, or the place in a request's list
    emails: Sequence[str]
    name: str = ""


def import_rows(
    session: Session,
    directory: AccountDirectory,
    rows: Sequence[Row],
    case: str,
    where: str,
    errors: list[tuple[int, str]] | None = None,
    unit: str = "line",
) -> ImportResult:
    """Create or complete a contact per row: all rows or none (CsvImportError lists
    every row at fault, `where` naming the file or the request). A row's addresses
    that belong to one existing contact complete it; to two, it is refused."""
    errors = list(errors or [])
    planned: list[tuple[int, list[tuple[str, str]], str]] = []
    first_row: dict[str, int] = {}
    for row in rows:
        if not any(e.strip() for e in row.emails):
            errors.append((row.number, "no email address"))
            continue
        keys: list[tuple[str, str]] = []
        for email in row.emails:
            if not email.strip():
                continue
            try:
                address = check_address(directory, email, case)
            except InputError as exc:
                errors.append((row.number, f"{exc.where}: {exc.reason}"))
                continue
            key = address.normalized
            if key in first_row and first_row[key] != row.number:
                errors.append((row.number, f"{email.strip()} is also on {unit} {first_row[key]}"))
                continue
            first_row[key] = row.number
            keys.append((key, address.addr_spec))
        planned.append((row.number, unique(keys), row.name.strip()))
    if errors:
        raise CsvImportError(where, sorted(errors, key=lambda e: e[0]))
    result = ImportResult()
    for number, keys, name in planned:
        _apply_row(session, directory, number, keys, name, result, errors)
    if errors:
        # Rows that clash with contacts already stored: raise, and the caller's
        # transaction rolls back everything imported so far.
        raise CsvImportError(where, errors)
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
