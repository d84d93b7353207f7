"""`gateway domain add|list|remove` and `gateway dns records|check`: the sending domains
and what they publish in DNS. `dns check` exits 1 when a check fails (for scripts and
monitoring), 0 otherwise: a DNS that did not answer is said, not counted as failed."""

from __future__ import annotations

import argparse

from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.resolver import Resolver
from gateway.vault import Vault
from outbound import dns_checks
from outbound.sending_domains import (
    add_domain,
    check,
    get_domain,
    list_domains,
    records,
    remove_domain,
    with_dropbox,
    zone_file,
)


def register(sub: Verbs) -> None:
    group = sub.group("domain", help="the domains the CRM sends from (SPF, DKIM, DMARC)")
    a = group.add_parser("add", help="add a sending domain (and its DKIM key, if it has none)")
    a.add_argument("domain")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_add)
    a = group.add_parser("list", help="the sending domains and their last check")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    a = group.add_parser("remove", help="stop checking a domain (its DKIM keys stay)")
    a.add_argument("domain")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_remove)

    group = sub.group("dns", help="DNS records to publish, and live checks of them")
    a = group.add_parser("records", help="the records to publish for DOMAIN, as a zone file")
    a.add_argument("domain")
    a.add_argument("--account", help="account name (default: the only one)")
    a.set_defaults(handler=cmd_records)
    a = group.add_parser("check", help="check DOMAIN's records now; exit 1 if one fails")
    a.add_argument("domain")
    a.add_argument("--account", help="account name (default: the only one)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_check)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        row = add_domain(session, Vault.load(ctx.config.secret_key_file), account, args.domain)
        name = row.domain
    ctx.console.print(f"added {name}: publish its records (`gateway dns records {name}`)")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.read() as session:
        account = get_account(session, args.account)
        rows = [
            {
                "domain": d.domain,
                "status": d.status or "unchecked",
                "checked_at": d.checked_at.isoformat() if d.checked_at else None,
                "failures": d.failures,
            }
            for d in list_domains(session, account.id)
        ]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["domain", "status", "last checked", "failed in a row"],
            [[r["domain"], r["status"], r["checked_at"] or "never", r["failures"]] for r in rows],
        )
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        remove_domain(session, account.id, args.domain)
    ctx.console.print(f"removed {args.domain}: it is no longer checked (its DKIM keys stay)")
    return 0


def cmd_records(ctx: Context, args: argparse.Namespace) -> int:
    resolver = Resolver(ctx.config.dns)
    with ctx.db.read() as session:
        account = get_account(session, args.account)
        row = get_domain(session, account.id, args.domain)
        found = records(session, ctx.config, resolver, row)
    ctx.console.print(zone_file(found), end="", soft_wrap=True, markup=False, highlight=False)
    return 0


def cmd_check(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.read() as session:
        account_id = get_account(session, args.account).id
    vault = Vault.load(ctx.config.secret_key_file)
    checked = check(ctx.db, ctx.config, vault, account_id, args.domain)
    findings, status = with_dropbox(ctx.config, checked)
    if args.json:
        ctx.print_json(
            {"domain": checked.domain, "status": status, "checks": [f.as_dict() for f in findings]}
        )
    else:
        ctx.print_table(
            ["record", "name", "status", "what was found", "what to change"],
            [[f.kind, f.name, f.status, f.words, f.fix] for f in findings],
        )
    return 1 if status == dns_checks.FAIL else 0
