"""`gateway quarantine list|approve|reject`: dropbox mail held because its sender did not verify."""

from __future__ import annotations

import argparse

from gateway import quarantine
from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.models import RawMessage
from gateway.parsing import parse


def register(sub: Verbs) -> None:
    qsub = sub.group("quarantine", help="dropbox mail held for approval")
    a = qsub.add_parser("list", help="list held messages")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    for name, helptext in (("approve", "attach it like any dropbox mail"), ("reject", "drop it")):
        a = qsub.add_parser(name, help=helptext)
        a.add_argument("id", type=int)
        a.set_defaults(handler=cmd_decide, decision=name)
    for parser in qsub.choices.values():
        parser.add_argument("--account", help="account name (default: the only one)")


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = []
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        for sighting, user in quarantine.held(session, account.id):
            raw = (
                session.get(RawMessage, sighting.raw_message_id)
                if sighting.raw_message_id
                else None
            )
            parsed = parse(raw.data) if raw else None
            rows.append(
                {
                    "id": sighting.id,
                    "user": user,
                    "received_at": sighting.received_at.isoformat(),
                    "from": [a.addr_spec for a in parsed.from_] if parsed else [],
                    "subject": parsed.subject if parsed else "",
                    "authentication_results": sighting.auth_results,
                }
            )
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "user", "from", "subject", "authentication"],
            [
                [r["id"], r["user"], r["from"], r["subject"], r["authentication_results"]]
                for r in rows
            ],
        )
    return 0


def cmd_decide(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        if args.decision == "approve":
            quarantine.approve(session, account.id, args.id)
        else:
            quarantine.reject(session, account.id, args.id)
    ctx.console.print(f"{args.decision}d message {args.id}")
    return 0
