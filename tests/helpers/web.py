"""The web role on a loopback port, run in a thread of its own for synchronous tests."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx

from admin.server import WebRole
from gateway.config import Config, WebConfig
from gateway.db import Database
from tests.helpers.roles import running


@contextlib.contextmanager
def running_web(db: Database, config: Config, **web: Any) -> Iterator[str]:
    """Serve the web role on a free port until the block ends; yields its base URL."""
    config = replace(config, web=replace(WebConfig(listen="127.0.0.1:0"), **web))
    role = WebRole(db, config)
    with running({"web": role}):
        yield f"http://127.0.0.1:{role.port}"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text `text`, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


@dataclasses.dataclass
class ApiClient:
    """Calls /api/v1 of a served web role, with a token chosen by name."""

    url: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )
