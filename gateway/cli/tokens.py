"""`gateway token create|list|revoke`: the account's API tokens, for programs (the CRM),
each with its scopes: read, write, send, admin. (A user's own sending token is
`gateway user token`.)"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.models import ApiToken
from gateway.tokens import (
    SCOPES,
    create_account_token,
    list_account_tokens,
    revoke_account_token,
)


def register(sub: Verbs) -> None:
    tsub = sub.group("token", help="the account's API tokens, with scopes (for programs)")
    a = tsub.add_parser("create", help="create a token (shown once)")
    a.add_argument(
        "--scope", action="append", choices=SCOPES, required=True, help="repeat for several"
    )
    a.add_argument("--label", default="", help="what it is for, e.g. the CRM's name")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_create)
    a = tsub.add_parser("list", help="the account's tokens (their ids, never the secrets)")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = tsub.add_parser("revoke", help="delete a token: it is refused from now on")
    a.add_argument("token_id", help="the id `token list` shows")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_revoke)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        created = create_account_token(session, account.id, args.scope, args.label)
    ctx.console.print(
        f"token {created.public_id} ({', '.join(sorted(set(args.scope), key=SCOPES.index))}) "
        "for the account (shown once, keep it secret):",
        markup=False,
    )
    ctx.console.print(created.token, markup=False)
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        rows = [_row(t) for t in list_account_tokens(session, account.id)]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "scopes", "label", "created", "last used"],
            [
                [r["id"], ", ".join(r["scopes"]), r["label"], r["created_at"], r["last_used_at"]]
                for r in rows
            ],
        )
    return 0


def cmd_revoke(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        revoke_account_token(session, account.id, args.token_id)
    ctx.console.print(f"revoked token {args.token_id}")
    return 0


def _row(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.public_id,
        "scopes": token.scopes.split(","),
        "label": token.label,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }
