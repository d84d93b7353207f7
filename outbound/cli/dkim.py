"""`gateway dkim generate|list|rotate|remove|record`: the DKIM keys of sending domains."""

from __future__ import annotations

import argparse

from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.vault import Vault
from outbound.dkim_keys import generate, list_keys, normalized, remove, rotate, zone_line

ALGORITHMS = ("rsa", "ed25519")


def register(sub: Verbs) -> None:
    dsub = sub.group("dkim", help="DKIM keys of the domains the CRM sends from")
    for name, text in (
        ("generate", "a new active key for DOMAIN (RSA 2048 unless --algorithm ed25519)"),
        ("rotate", "a new active key for DOMAIN; the old one is kept, retired, until removed"),
    ):
        a = dsub.add_parser(name, help=text)
        a.add_argument("domain")
        a.add_argument("--selector", help="default: gw<yyyymm> (gw<yyyymm>-ed for ed25519)")
        a.add_argument("--algorithm", choices=ALGORITHMS, default="rsa")
        a.add_argument("--account", help="account name (default: the only one)")
        a.set_defaults(handler=cmd_generate if name == "generate" else cmd_rotate)
    a = dsub.add_parser("list", help="every key, its selector, algorithm and state")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = dsub.add_parser("remove", help="delete a key (publish nothing for it afterwards)")
    a.add_argument("domain")
    a.add_argument("selector")
    a.set_defaults(handler=cmd_remove)
    a = dsub.add_parser("record", help="the DNS TXT records to publish for DOMAIN")
    a.add_argument("domain")
    a.set_defaults(handler=cmd_record)


def _vault(ctx: Context) -> Vault:
    return Vault.load(ctx.config.secret_key_file)


def cmd_generate(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        key = generate(session, _vault(ctx), account, args.domain, args.algorithm, args.selector)
        line = zone_line(key)
        ctx.console.print(f"generated {key.algorithm} key {key.selector} for {key.domain}")
    ctx.console.print("publish this TXT record:")
    ctx.console.print(line, soft_wrap=True)
    return 0


def cmd_rotate(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        key, old = rotate(session, _vault(ctx), account, args.domain, args.algorithm, args.selector)
        line = zone_line(key)
        ctx.console.print(f"new active {key.algorithm} key {key.selector} for {key.domain}")
        if old is not None:
            ctx.console.print(
                f"{old.selector} is retired: keep its record published until the mail it "
                "signed has been delivered and read (a few days), then "
                f"`gateway dkim remove {old.domain} {old.selector}`"
            )
    ctx.console.print("publish this TXT record now (the new key signs from now on):")
    ctx.console.print(line, soft_wrap=True)
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        rows = [
            {
                "domain": k.domain,
                "selector": k.selector,
                "algorithm": k.algorithm,
                "state": k.state,
                "created_at": k.created_at.isoformat(),
            }
            for k in list_keys(session)
        ]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["domain", "selector", "algorithm", "state", "created"],
            [
                [r["domain"], r["selector"], r["algorithm"], r["state"], r["created_at"]]
                for r in rows
            ],
        )
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        key = remove(session, args.domain, args.selector)
        state = key.state
    ctx.console.print(f"removed {args.selector}._domainkey.{args.domain} ({state})")
    return 0


def cmd_record(ctx: Context, args: argparse.Namespace) -> int:
    domain = normalized(args.domain)
    with ctx.db.session() as session:
        lines = [zone_line(k) for k in list_keys(session) if k.domain == domain]
    if not lines:
        ctx.err.print(f"gateway: no DKIM key for {domain} (`gateway dkim generate {domain}`)")
        return 1
    for line in lines:
        ctx.console.print(line, soft_wrap=True)
    return 0
