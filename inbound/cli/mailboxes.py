"""`gateway mailbox add|list|status|sync|reconnect|remove`: connected IMAP mailboxes."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import asdict
from typing import Any

from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
from gateway.errors import InputError
from gateway.providers import PROVIDERS, SECURITIES
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox, reconnect, remove, status
from inbound.imap.service import audit_now, sync_now


def register(sub: Verbs) -> None:
    msub = sub.group("mailbox", help="connect users' mailboxes (IMAP sync)")
    a = msub.add_parser("add", help="connect a mailbox (signs in before saving)")
    a.add_argument("email", help="the mailbox's address")
    a.add_argument("--provider", choices=PROVIDERS, default="other")
    a.add_argument("--imap-host")
    a.add_argument("--imap-port", type=int)
    a.add_argument("--imap-security", choices=SECURITIES)
    a.add_argument("--smtp-host")
    a.add_argument("--smtp-port", type=int)
    a.add_argument("--smtp-security", choices=SECURITIES)
    a.add_argument("--username", help="sign-in name (default: the address)")
    a.add_argument("--sync", choices=("two_way", "one_way"), default="two_way")
    a.add_argument("--tls-no-verify", action="store_true", help="accept a self-signed server")
    a.add_argument("--user", help="the CRM user who owns it (default: whose address it is)")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument(
        "--oauth2",
        action="store_true",
        help="sign in with OAuth2 (XOAUTH2): read the tokens as JSON from stdin "
        '({"access_token": ..., "refresh_token": ..., "expires_in": ...})',
    )
    a.set_defaults(handler=cmd_add)
    a = msub.add_parser("reconnect", help="new credentials for a mailbox; it resumes syncing")
    a.add_argument("email")
    a.add_argument("--password-stdin", action="store_true")
    a.add_argument("--oauth2", action="store_true", help="new OAuth2 tokens as JSON on stdin")
    a.set_defaults(handler=cmd_reconnect)
    a = msub.add_parser("remove", help="stop syncing and delete the credentials (mail stays)")
    a.add_argument("email")
    a.set_defaults(handler=cmd_remove)
    for name, text in (("list", "list mailboxes"), ("status", "sync progress of every mailbox")):
        a = msub.add_parser(name, help=text)
        a.add_argument("--json", action="store_true")
        a.set_defaults(handler=cmd_status)
    a = msub.add_parser("sync", help="run one sync pass of a mailbox now, in the foreground")
    a.add_argument("email")
    a.set_defaults(handler=cmd_sync)
    a = msub.add_parser(
        "audit", help="compare the server's mail with what was stored; fetch what is missing"
    )
    a.add_argument("email")
    a.add_argument("--no-repair", action="store_true", help="only count what is missing")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_audit)


def _secret(args: argparse.Namespace, prompt: str) -> str:
    if args.oauth2:
        value = sys.stdin.read().strip()
    elif args.password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = getpass.getpass(prompt)
    if not value:
        raise InputError("password", "empty")
    return value


def _vault(ctx: Context) -> Vault:
    return Vault.load(ctx.config.secret_key_file)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    request = MailboxRequest(
        email=args.email,
        provider=args.provider,
        imap_host=args.imap_host,
        imap_port=args.imap_port,
        imap_security=args.imap_security,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_security=args.smtp_security,
        username=args.username,
        sync_mode=args.sync,
        tls_verify=not args.tls_no_verify,
        user_email=args.user,
        auth="oauth2" if args.oauth2 else "password",
    )
    vault = _vault(ctx)
    secret = _secret(args, f"password for {args.email}: ")
    mailbox = add_mailbox(ctx.db, ctx.config, vault, request, secret)
    ctx.console.print(
        f"connected {mailbox.email} ({mailbox.imap_host}:{mailbox.imap_port}, "
        f"{mailbox.sync_mode} sync); `gateway serve` syncs it"
    )
    return 0


def cmd_reconnect(ctx: Context, args: argparse.Namespace) -> int:
    secret = _secret(args, f"new password for {args.email}: ")
    mailbox = reconnect(ctx.db, ctx.config, _vault(ctx), args.email, secret)
    ctx.console.print(f"reconnected {mailbox.email}: syncing resumes from its checkpoint")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    remove(ctx.db, ctx.config, args.email)
    ctx.console.print(f"removed {args.email}: sync stopped, credentials deleted; its mail stays")
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.db.read() as session:
        rows = status(session)
    if args.json:
        ctx.print_json(rows)
        return 0
    if not rows:
        ctx.console.print("no mailbox connected (`gateway mailbox add EMAIL --provider ...`)")
        return 0
    table = []
    for row in rows:
        folders = "; ".join(_progress(f) for f in row["folders"]) or "not synced yet"
        table.append(
            [
                row["email"],
                row["state"],
                row["sync"],
                folders,
                row["last_sync_at"],
                row["last_error"],
            ]
        )
    ctx.print_table(["mailbox", "state", "sync", "folders", "last sync", "last error"], table)
    return 0


def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    found = audit_now(ctx.db, ctx.config, _vault(ctx), args.email, repair=not args.no_repair)
    if args.json:
        ctx.print_json([asdict(f) for f in found])
        return 0
    for f in found:
        ctx.console.print(
            f"{f.role} {f.name!r}: {f.on_server} on the server within the window, "
            f"{f.involving_contacts} involving contacts, missing {f.missing}, "
            f"fetched now {f.repaired}"
        )
    return 0


def _progress(folder: dict[str, Any]) -> str:
    text = f"{folder['role']} {folder['name']!r}: "
    if folder["initial_sync"] == "running":
        total = max(folder["total"], 1)
        done = min(folder["scanned"], total)
        filled = round(20 * done / total)
        text += f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{folder['total']} scanned, "
    else:
        text += f"{folder['scanned']} scanned, "
    text += f"{folder['matched']} matched, {folder['fetched']} fetched"
    if folder["audited_at"]:
        text += f", missing {folder['missing']} (audit {folder['audited_at'][:16]})"
    return text


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    report = sync_now(ctx.db, ctx.config, _vault(ctx), args.email)
    for folder in report.folders:
        ctx.console.print(
            f"{folder.role} {folder.name!r}: {folder.scanned} scanned, {folder.matched} matched, "
            f"{folder.fetched} fetched"
            + (" (UIDVALIDITY changed: rescanned)" if folder.uidvalidity_changed else "")
        )
    return 0
