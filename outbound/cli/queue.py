"""`gateway queue list|show|retry|cancel`: the outbound delivery queue."""

from __future__ import annotations

import argparse

from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.errors import NotFound
from gateway.mail_queue import cancel, queue_rows, retry
from gateway.models import DeliveryState


def register(sub: Verbs) -> None:
    qsub = sub.group("queue", help="the outbound delivery queue")
    a = qsub.add_parser("list", help="every message in the queue, with its recipients' states")
    a.add_argument("--state", choices=[s.value for s in DeliveryState])
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = qsub.add_parser("show", help="one message: each recipient's state and last reply")
    a.add_argument("id", type=int)
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_show)
    a = qsub.add_parser("retry", help="try again now (deferred, bounced and failed recipients)")
    a.add_argument("id", type=int)
    a.set_defaults(handler=cmd_retry)
    a = qsub.add_parser("cancel", help="stop trying the recipients not yet sent or bounced")
    a.add_argument("id", type=int)
    a.set_defaults(handler=cmd_cancel)


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = queue_rows(ctx.db, args.state)
    if args.json:
        ctx.print_json(rows)
        return 0
    ctx.print_table(
        ["id", "state", "route", "from", "recipients", "attempts", "next try"],
        [
            [
                r["id"],
                r["state"],
                r["route"] or "",
                r["from"],
                ", ".join(f"{x['address']} ({x['state']})" for x in r["recipients"]),
                r["attempts"],
                r["next_attempt_at"] if r["state"] in ("queued", "deferred") else "",
            ]
            for r in rows
        ],
    )
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    rows = queue_rows(ctx.db, message_id=args.id)
    if not rows:
        raise NotFound(f"no queued message {args.id}")
    row = rows[0]
    if args.json:
        ctx.print_json(row)
        return 0
    fields = [[k, v] for k, v in row.items() if k != "recipients"]
    ctx.print_table(["field", "value"], fields)
    ctx.print_table(
        ["recipient", "state", "attempts", "last reply"],
        [
            [x["address"], x["state"], x["attempts"], x["last_reply"] or ""]
            for x in row["recipients"]
        ],
    )
    return 0


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    count = retry(ctx.db, args.id)
    ctx.console.print(f"message {args.id}: {count} recipient(s) queued again")
    return 0


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    count = cancel(ctx.db, args.id)
    ctx.console.print(f"message {args.id}: {count} recipient(s) cancelled")
    return 0
