"""`gateway user route EMAIL mailbox|direct|relay`: how a user's outgoing mail leaves."""

from __future__ import annotations

import argparse

from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from outbound.routes import ROUTES, set_route


def register(verbs: Verbs) -> None:
    a = verbs.group("user").add_parser(
        "route", help="how the user's outgoing mail leaves: mailbox, direct or relay"
    )
    a.add_argument("email")
    a.add_argument("route", choices=ROUTES)
    a.set_defaults(handler=cmd_route)


def cmd_route(ctx: Context, args: argparse.Namespace) -> int:
    set_route(ctx.db, ctx.config, args.email, args.route)
    ctx.console.print(f"{args.email} sends {args.route} from now on")
    return 0
