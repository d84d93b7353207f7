"""The verbs of the `gateway` command, added by the modules gateway.registry lists.

A module adds a verb with `verbs.add_parser(name, ...)`, or a group of them with
`verbs.group(name, help=...)`; another module may add to an existing group (the
outbound role adds `route` to `user`). A group, or `gateway` itself, given no verb
prints its help.
"""

from __future__ import annotations

import argparse
from typing import Any


class Verbs:
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(handler=None, help_parser=parser)
        self._top = parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, Any] = {}

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A verb of its own: `gateway NAME ...`."""
        parser: argparse.ArgumentParser = self._top.add_parser(name, **kwargs)
        return parser

    def group(self, name: str, **kwargs: Any) -> Any:
        """The verbs under `gateway NAME` (an argparse subparsers action), made on first
        use with `kwargs` (help=...)."""
        if name not in self._groups:
            parser = self.add_parser(name, **kwargs)
            parser.set_defaults(handler=None, help_parser=parser)
            self._groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
        return self._groups[name]
