"""Logging set-up shared by the command line and the worker processes of `gateway serve`."""

from __future__ import annotations

import logging
import sys

from gateway.config import Config


def configure_logging(config: Config, process: str = "") -> None:
    tag = f"[{process}] " if process else ""
    logging.basicConfig(
        level=config.log.level.upper(),
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.log.level != "debug":
        # Per-connection chatter of the libraries: only problems at info level.
        for name in ("alembic", "mail.log"):
            logging.getLogger(name).setLevel(logging.WARNING)
