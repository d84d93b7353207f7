"""The `gateway` command: argument tree and the one place errors become exit codes.

Subcommands live in small modules (setup, users, contacts, mail); each is a
thin layer over the services in `gateway`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import contacts, dkim, mail, mailboxes, quarantine, queue, setup, users
from gateway.cli.context import Context
from gateway.errors import ConfigError, GatewayError
from gateway.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="CRM Email Gateway: mail onto the right contacts."
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: $GATEWAY_CONFIG, else ./config.toml if present)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (setup, users, contacts, mail, mailboxes, quarantine, dkim, queue):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args.config)
    try:
        configure_logging(ctx.config)
        result: int = args.handler(ctx, args)
        return result
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()
