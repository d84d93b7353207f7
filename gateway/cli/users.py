"""`gateway user add|list|show`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from gateway.accounts import (
    add_user,
    dropbox_address,
    get_account,
    get_user,
    list_users,
    rotate_dropbox,
    set_password,
)
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.config import Config
from gateway.errors import InputError
from gateway.models import User
from gateway.tokens import create_token, list_tokens, revoke_token
from gateway.web_sessions import end_sessions_of


def register(sub: Verbs) -> None:
    usub = sub.group("user", help="manage the CRM's users")
    a = usub.add_parser("add", help="add a user and print their dropbox address")
    a.add_argument("email")
    a.add_argument("--name", default="")
    a.add_argument("--alias", action="append", default=[], help="another address of theirs")
    a.add_argument("--admin", action="store_true", help="may sign in to the admin page")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_add)
    a = usub.add_parser("list", help="list users")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = usub.add_parser("rotate-dropbox", help="give a user a new dropbox address")
    a.add_argument("email")
    a.set_defaults(handler=cmd_rotate)
    a = usub.add_parser("passwd", help="set a user's password (argon2id)")
    a.add_argument("email")
    a.add_argument(
        "--password-stdin", action="store_true", help="read it from standard input (one line)"
    )
    a.add_argument("--must-change", action="store_true", help="to be changed at the next sign-in")
    a.set_defaults(handler=cmd_passwd)
    a = usub.add_parser("show", help="show one user")
    a.add_argument("email")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_show)
    t = usub.add_parser("token", help="API tokens: the CRM's credentials for sending")
    tsub = t.add_subparsers(dest="token_command", required=True)
    a = tsub.add_parser("create", help="create a token (shown once) for SMTP AUTH and the API")
    a.add_argument("email")
    a.add_argument("--label", default="", help="what it is for, e.g. the CRM's name")
    a.set_defaults(handler=cmd_token_create)
    a = tsub.add_parser("list", help="a user's tokens (their ids, never the secrets)")
    a.add_argument("email")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_token_list)
    a = tsub.add_parser("revoke", help="delete a token: it is refused from now on")
    a.add_argument("token_id", help="the id `token list` shows")
    a.set_defaults(handler=cmd_token_revoke)


def user_dict(config: Config, user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "admin": user.is_admin,
        "addresses": [a.address for a in user.addresses],
        "dropbox_address": dropbox_address(config, user),
        "created_at": user.created_at.isoformat(),
    }


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        user, password = add_user(
            session, ctx.config, account, args.email, args.name, args.alias, args.admin
        )
        data = user_dict(ctx.config, user)
    ctx.console.print(f"added user {data['email']}")
    ctx.console.print(f"dropbox address: {data['dropbox_address']}")
    if password:
        ctx.console.print(f"one-time password (change it at first sign-in): {password}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        rows = [user_dict(ctx.config, u) for u in list_users(session, account)]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["email", "name", "admin", "aliases", "dropbox address"],
            [
                [
                    r["email"],
                    r["name"],
                    "yes" if r["admin"] else "",
                    r["addresses"][1:],
                    r["dropbox_address"],
                ]
                for r in rows
            ],
        )
    return 0


def cmd_rotate(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        user = rotate_dropbox(session, ctx.config, args.email)
        address = dropbox_address(ctx.config, user)
    ctx.console.print(f"new dropbox address: {address} (the old one is now refused)")
    return 0


def cmd_passwd(ctx: Context, args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"new password for {args.email}: ")
        if getpass.getpass("again: ") != password:
            raise InputError("password", "the two do not match")
    with ctx.db.session() as session:
        user = set_password(session, ctx.config, args.email, password, args.must_change)
        ended = end_sessions_of(session, user.id)
    signed_out = f"; {ended} session(s) signed out" if ended else ""
    ctx.console.print(f"password of {args.email} set{signed_out}", markup=False)
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        data = user_dict(ctx.config, get_user(session, ctx.config, args.email))
    if args.json:
        ctx.print_json(data)
    else:
        ctx.print_table(["field", "value"], list(data.items()))
    return 0


def cmd_token_create(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        created = create_token(session, ctx.config, args.email, args.label)
    ctx.console.print(f"token {created.public_id} for {args.email} (shown once, keep it secret):")
    ctx.console.print(created.token)
    return 0


def cmd_token_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        rows = [
            {
                "id": t.public_id,
                "label": t.label,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
            }
            for t in list_tokens(session, ctx.config, args.email)
        ]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "label", "created", "last used"],
            [[r["id"], r["label"], r["created_at"], r["last_used_at"] or ""] for r in rows],
        )
    return 0


def cmd_token_revoke(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        revoke_token(session, args.token_id)
    ctx.console.print(f"revoked token {args.token_id}")
    return 0
