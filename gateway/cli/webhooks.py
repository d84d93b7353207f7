"""`gateway webhook add|list|remove|rotate|enable|test|log|retry`: the account's webhook
endpoints (Standard Webhooks), and their delivery log."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.accounts import get_account
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.models import WebhookEndpoint
from gateway.vault import Vault
from gateway.webhooks import (
    EVENT_TYPES,
    add_endpoint,
    deliveries_of,
    enable,
    get_endpoint,
    list_endpoints,
    remove_endpoint,
    retry_delivery,
    rotate_secret,
    send_test,
)


def register(sub: Verbs) -> None:
    wsub = sub.group("webhook", help="the account's webhook endpoints")
    a = wsub.add_parser("add", help="add an endpoint; prints its secret once")
    a.add_argument("url")
    a.add_argument(
        "--event", action="append", default=[], choices=EVENT_TYPES, help="repeat; none: every"
    )
    a.set_defaults(handler=cmd_add)
    a = wsub.add_parser("list", help="the endpoints (never their secrets)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_list)
    for name, handler, text in (
        ("remove", cmd_remove, "remove an endpoint and its deliveries"),
        ("rotate", cmd_rotate, "a new secret (the old one signs too for a day)"),
        ("enable", cmd_enable, "enable again an endpoint that answered 410"),
        ("test", cmd_test, "send it a webhook.test event"),
        ("log", cmd_log, "its deliveries, newest first"),
    ):
        a = wsub.add_parser(name, help=text)
        a.add_argument("endpoint_id", type=int)
        if name == "log":
            a.add_argument("--json", action="store_true")
        a.set_defaults(handler=handler)
    a = wsub.add_parser("retry", help="try a delivery again now")
    a.add_argument("delivery_id", type=int)
    a.set_defaults(handler=cmd_retry)
    for parser in wsub.choices.values():
        parser.add_argument("--account", help="account name (default: the only one)")


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    vault = Vault.load(ctx.config.secret_key_file)
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        endpoint, secret = add_endpoint(
            session, ctx.config, vault, account.id, args.url, args.event
        )
        endpoint_id = endpoint.id
    ctx.console.print(f"endpoint {endpoint_id}: {args.url}", markup=False)
    ctx.console.print(f"secret (shown once, to verify signatures): {secret}", markup=False)
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        rows = [_endpoint(e) for e in list_endpoints(session, account.id)]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "url", "events", "enabled", "disabled because"],
            [
                [r["id"], r["url"], r["event_types"] or "(all)", r["enabled"], r["disabled_reason"]]
                for r in rows
            ],
        )
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        remove_endpoint(session, get_endpoint(session, account.id, args.endpoint_id))
    ctx.console.print(f"removed endpoint {args.endpoint_id}")
    return 0


def cmd_rotate(ctx: Context, args: argparse.Namespace) -> int:
    vault = Vault.load(ctx.config.secret_key_file)
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        secret = rotate_secret(session, vault, get_endpoint(session, account.id, args.endpoint_id))
    ctx.console.print(f"new secret (shown once; the old one signs too for a day): {secret}")
    return 0


def cmd_enable(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        enable(get_endpoint(session, account.id, args.endpoint_id))
    ctx.console.print(f"endpoint {args.endpoint_id} enabled")
    return 0


def cmd_test(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        send_test(session, get_endpoint(session, account.id, args.endpoint_id))
    ctx.console.print(f"a webhook.test event goes to endpoint {args.endpoint_id}")
    return 0


def cmd_log(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        endpoint = get_endpoint(session, account.id, args.endpoint_id)
        rows = [
            {
                "id": d.id,
                "event_id": d.event_id,
                "type": d.event_type,
                "state": d.state,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in deliveries_of(session, endpoint)
        ]
    if args.json:
        ctx.print_json(rows)
    else:
        ctx.print_table(
            ["id", "type", "state", "tries", "status", "error"],
            [
                [r["id"], r["type"], r["state"], r["attempts"], r["last_status"], r["last_error"]]
                for r in rows
            ],
        )
    return 0


def cmd_retry(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        account = get_account(session, args.account)
        retry_delivery(session, account.id, args.delivery_id)
    ctx.console.print(f"delivery {args.delivery_id} is due now")
    return 0


def _endpoint(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
    }
