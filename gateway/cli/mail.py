"""`gateway ingest` and `gateway messages list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from gateway.accounts import get_account, get_user
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.errors import InputError
from gateway.explain import explain
from gateway.ingest import ingest
from gateway.messages import list_messages
from gateway.sources import open_source


def register(sub: Verbs) -> None:
    p = sub.add_parser("ingest", help="import an .eml, an mbox or a Maildir for a user")
    p.add_argument("path", type=Path)
    p.add_argument("--user", required=True, metavar="EMAIL", help="whose mail this is")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_ingest)

    msub = sub.group("messages", help="stored messages")
    a = msub.add_parser("list", help="list messages, newest first")
    a.add_argument("--contact", metavar="EMAIL", help="only those attached to this contact")
    a.add_argument("--user", metavar="EMAIL", help="only those seen for this user")
    a.add_argument("--unattached", action="store_true", help="only those on no contact")
    a.add_argument("--limit", type=int, default=50, help="show at most this many (default 50)")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = msub.add_parser("why", help="why a message is (not) on a contact: every trace of it")
    a.add_argument("message_id", metavar="MESSAGE-ID", help="its Message-ID, with or without <>")
    a.add_argument("--contact", metavar="EMAIL", help="the contact it should be on")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_why)


def cmd_why(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.read() as session:
        account = get_account(session, args.account)
        answer = explain(session, ctx.config, account.id, args.message_id, args.contact)
    if args.json:
        ctx.print_json(answer.as_dict())
        return 0
    ctx.console.print(answer.answer, markup=False)
    if len(answer.findings) > 1:
        ctx.print_table(
            ["decision", "where", "when", "why"],
            [[f.decision, f.where, f.when or "", f.reason] for f in answer.findings],
        )
    return 0


def cmd_ingest(ctx: Context, args: argparse.Namespace) -> int:
    source = open_source(args.path)
    with ctx.db.session() as session:
        user_id = get_user(session, ctx.config, args.user).id
    with Progress(
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=ctx.err,
        transient=True,
        disable=args.json,
    ) as progress:
        task = progress.add_task("ingest", total=source.count)
        report = ingest(
            ctx.db,
            ctx.config,
            user_id,
            source,
            progress=lambda n: progress.advance(task, n),
        )
    if args.json:
        ctx.print_json(report.__dict__)
    else:
        ctx.console.print(
            f"{args.path}: {source.count} message(s): {report.new_messages} new "
            f"({report.attached} on contacts, {report.unattached} unattached), "
            f"{report.already_known} already known, {report.discarded} malformed and "
            f"matching no contact (not kept), {len(report.failed)} failed"
        )
    for label, why in report.malformed:
        print(f"{label}: malformed: {why}", file=sys.stderr)
    for label, why in report.failed:
        print(f"{label}: failed: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InputError("--limit", "must be 1 or more")
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        user_id = get_user(session, ctx.config, args.user).id if args.user else None
        views = list_messages(
            session,
            account.id,
            contact_email=args.contact,
            user_id=user_id,
            unattached=args.unattached,
            limit=args.limit + 1,  # one more: to know whether the list was cut
            case=ctx.config.addresses.local_part_case,
        )
    if len(views) > args.limit:
        views = views[: args.limit]
        ctx.err.print(
            f"gateway: showing the newest {args.limit} messages; more match "
            f"(--limit {args.limit * 4} shows more)",
            markup=False,
        )
    if args.json:
        ctx.print_json([v.as_dict() for v in views])
        return 0
    ctx.print_table(
        ["id", "date", "dir", "from", "subject", "contacts", "flags"],
        [
            [
                v.id,
                v.date.strftime("%Y-%m-%d %H:%M") if v.date else "",
                "out" if v.direction == "outgoing" else "in",
                v.author_text,
                v.subject,
                v.contacts or "(unattached)",
                v.flags,
            ]
            for v in views
        ],
    )
    return 0
