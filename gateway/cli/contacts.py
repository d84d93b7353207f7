"""`gateway contacts import|export|list|add|remove`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.contact_import import export_csv, import_csv
from gateway.contacts import add_contact, list_contacts, remove_contact
from gateway.directory import AccountDirectory
from gateway.models import Contact


def register(sub: Verbs) -> None:
    csub = sub.group("contacts", help="manage the account's contacts")
    a = csub.add_parser("import", help="import a CSV (columns: email, name, other_emails)")
    a.add_argument("file", type=Path)
    a.set_defaults(handler=cmd_import)
    a = csub.add_parser("export", help="write all contacts as CSV")
    a.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    a.set_defaults(handler=cmd_export)
    a = csub.add_parser("list", help="list contacts")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = csub.add_parser("add", help="add a contact (its past mail attaches at once)")
    a.add_argument("email", nargs="+")
    a.add_argument("--name", default="")
    a.set_defaults(handler=cmd_add)
    a = csub.add_parser("remove", help="remove the contact that has this address")
    a.add_argument("email")
    a.set_defaults(handler=cmd_remove)
    for parser in csub.choices.values():
        parser.add_argument("--account", help="account name (default: the only one)")


def contact_dict(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "emails": [e.display for e in contact.emails],
        "source": contact.source,
        "source_message_id": contact.source_message_id,
        "created_at": contact.created_at.isoformat(),
    }


def _directory(ctx: Context, session: Any, name: str | None) -> AccountDirectory:
    return AccountDirectory.load(session, get_account(session, name), ctx.config)


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        directory = _directory(ctx, session, args.account)
        result = import_csv(session, directory, args.file, ctx.config.addresses.local_part_case)
    ctx.console.print(
        f"imported {args.file}: {result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged"
    )
    if result.ignored_columns:
        ctx.console.print(f"ignored columns: {', '.join(result.ignored_columns)}")
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        if args.output is None:
            export_csv(session, account.id, sys.stdout)
            return 0
        with args.output.open("w", encoding="utf-8", newline="") as out:
            count = export_csv(session, account.id, out)
    ctx.err.print(f"exported {count} contact(s) to {args.output}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        rows = [contact_dict(c) for c in list_contacts(session, account.id)]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "name", "emails", "source"],
            [[r["id"], r["name"], r["emails"], r["source"]] for r in rows],
        )
    return 0


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        directory = _directory(ctx, session, args.account)
        contact = add_contact(
            session, directory, args.email, args.name, ctx.config.addresses.local_part_case
        )
        data = contact_dict(contact)
    ctx.console.print(f"added contact {data['id']}: {', '.join(data['emails'])}")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        contact = remove_contact(
            session, account.id, args.email, ctx.config.addresses.local_part_case
        )
        contact_id = contact.id
    ctx.console.print(f"removed contact {contact_id} (its mail stays stored)")
    return 0
