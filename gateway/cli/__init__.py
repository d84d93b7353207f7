"""The `gateway` command: argument tree and the one place errors become exit codes.

Its verbs come from the modules gateway.registry.COMMANDS lists: the core's here
(setup: init, migrate, serve, account; users; contacts; mail: ingest, messages) and
those that live with their role (inbound.cli, outbound.cli). Each is a thin layer
over the services it calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__, registry
from gateway.cli.context import Context
from gateway.cli.verbs import Verbs
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
    verbs = Verbs(parser)
    for module in registry.command_modules():
        module.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.handler is None:  # `gateway`, or a group, without a verb
        args.help_parser.print_help()
        return 0
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
