"""What every subcommand needs: the config and the database, opened on first use."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.config import Config, load_config
from gateway.db import Database


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._db: Database | None = None
        # Piped output keeps whole lines: no wrapping at 80 columns.
        width = None if sys.stdout.isatty() else 200
        self.console = Console(highlight=False, width=width)
        self.err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def reload(self) -> None:
        self._config = None
        self.close()

    @property
    def db(self) -> Database:
        if self._db is None:
            lease = self.config.cluster.lease
            self._db = Database(self.config.database_url, idle_in_transaction=lease / 2)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def print_json(self, value: Any) -> None:
        json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")

    def print_table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*[_text(v) for v in row])
        self.console.print(table)


def _text(value: Any) -> Text:
    """Plain text: values from mail must never be read as rich markup."""
    if value is None:
        return Text("")
    if isinstance(value, list | tuple):
        return Text(", ".join(str(v) for v in value))
    return Text(str(value))
