"""A CalDAV front that takes OAuth2 bearer tokens, as Google's CalDAV does: a request
whose `Authorization: Bearer <token>` is the user's valid token goes on to Radicale
with the user's password; any other gets 401. `tokens` is shared with the token
endpoint, which registers the tokens it hands out (tests.peers.token_endpoint)."""

from __future__ import annotations

import base64
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.peers.http_thread import HttpThread


@dataclass
class BearerProxy:
    upstream: str  # Radicale's URL
    user: str
    password: str
    tokens: dict[str, str] = field(default_factory=dict)  # user -> valid access token
    refused: int = 0

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                given = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if given != proxy.tokens.get(proxy.user):
                    proxy.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="calendar"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                basic = base64.b64encode(f"{proxy.user}:{proxy.password}".encode()).decode()
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("content-type", "depth", "if-match", "if-none-match")
                }
                headers["Authorization"] = f"Basic {basic}"
                request = urllib.request.Request(
                    proxy.upstream.rstrip("/") + self.path,
                    data=body,
                    headers=headers,
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, data, kind = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as failed:
                    status, data, kind = failed.code, failed.read(), failed.headers
                self.send_response(status)
                for name in ("Content-Type", "ETag", "Location"):
                    if kind.get(name):
                        self.send_header(name, kind[name])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = _any

            def log_message(self, *args: Any) -> None:
                pass

        self._http = HttpThread(Handler)

    @property
    def url(self) -> str:
        return f"{self._http.origin}/"

    def stop(self) -> None:
        self._http.stop()
