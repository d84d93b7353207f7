"""`gateway init`, `migrate`, `serve` and `account`: setting up and running."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from gateway.accounts import add_user, create_account, get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.config import DEFAULT_CONFIG_FILE, render_example
from gateway.errors import InputError
from gateway.models import Account, Plan
from gateway.registry import check_roles, summary
from gateway.runner import Service
from gateway.tls import ensure_self_signed
from gateway.vault import ensure_key_file


def register(sub: Verbs) -> None:
    p = sub.add_parser("init", help="create config, database, secret key, account and admin")
    p.add_argument("--account", default="default", help="name of the first account")
    p.add_argument("--admin-email", default="admin@localhost", help="the admin user's email")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("serve", help="run the enabled roles until SIGTERM or SIGINT")
    p.add_argument("--roles", help="comma-separated roles (default: [serve] roles)")
    p.set_defaults(handler=cmd_serve)

    asub = sub.group("account", help="show or change account settings")
    s = asub.add_parser("show", help="show the account's settings")
    s.add_argument("--account", help="account name (default: the only one)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_account_show)
    s = asub.add_parser("set", help="change the account's settings")
    s.add_argument("--account", help="account name (default: the only one)")
    s.add_argument("--plan", choices=[p.value for p in Plan])
    s.add_argument("--auto-create-contacts", choices=["on", "off"])
    s.add_argument("--block-domain", action="append", default=[], metavar="DOMAIN")
    s.add_argument("--unblock-domain", action="append", default=[], metavar="DOMAIN")
    s.set_defaults(handler=cmd_account_set)


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    path = Path(ctx.config_path or os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG_FILE)
    if not path.exists():
        path.write_text(render_example(), encoding="utf-8")
        ctx.console.print(f"wrote {path}")
        if ctx.config_path is None and "GATEWAY_CONFIG" not in os.environ:
            ctx.config_path = str(path)
        ctx.reload()
    config = ctx.config
    config.var_dir.mkdir(parents=True, exist_ok=True)
    if ensure_key_file(config.secret_key_file):
        ctx.console.print(f"wrote secret key {config.secret_key_file}")
    if ensure_self_signed(config.tls_cert_file, config.tls_key_file, config.dropbox.hostname):
        ctx.console.print(f"wrote a self-signed TLS certificate {config.tls_cert_file}")
    ctx.db.migrate()
    with ctx.db.session() as session:
        if session.query(Account).count():
            ctx.console.print("already initialized: database and account exist")
            return 0
        account = create_account(session, args.account)
        user, password = add_user(
            session, config, account, args.admin_email, name="Administrator", admin=True
        )
    ctx.console.print(f"created account {account.name!r} and admin user {user.email}")
    ctx.console.print(f"one-time password (change it at first sign-in): {password}")
    return 0


def cmd_migrate(ctx: Context, args: argparse.Namespace) -> int:
    ctx.db.migrate()
    ctx.console.print("database schema is up to date")
    return 0


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    roles = (
        [r.strip() for r in args.roles.split(",") if r.strip()]
        if args.roles is not None
        else list(config.serve.roles)
    )
    check_roles(roles)
    ctx.db.migrate()

    def ready() -> None:
        # Said once every role started: what listens where, and what to set.
        for line in summary(roles, config):
            ctx.err.print(f"gateway: {line}", markup=False)
        if "delivery" in roles and config.outbound.default_route == "hold":
            ctx.err.print(
                "gateway: outbound mail is held: nothing leaves this machine until a route "
                "is set ([outbound] default_route and relay_url, or `gateway user route`)",
                markup=False,
            )
        ctx.err.print("gateway: ready")

    asyncio.run(Service(config, ctx.db).serve(roles, ready=ready))
    return 0


def _account_dict(account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "plan": account.plan,
        "auto_create_contacts": account.auto_create_contacts,
        "blocked_domains": list(account.blocked_domains or []),
    }


def cmd_account_show(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        data = _account_dict(get_account(session, args.account))
    if args.json:
        ctx.print_json(data)
    else:
        ctx.print_table(["setting", "value"], list(data.items()))
    return 0


def cmd_account_set(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        if args.plan:
            account.plan = args.plan
        if args.auto_create_contacts:
            account.auto_create_contacts = args.auto_create_contacts == "on"
        blocked = [d for d in account.blocked_domains or [] if d not in args.unblock_domain]
        for domain in args.block_domain:
            domain = domain.strip().lower().rstrip(".")
            if not domain or "@" in domain:
                raise InputError(domain or "(empty)", "not a domain name")
            if domain not in blocked:
                blocked.append(domain)
        account.blocked_domains = blocked
        data = _account_dict(account)
    ctx.print_table(["setting", "value"], list(data.items()))
    return 0
