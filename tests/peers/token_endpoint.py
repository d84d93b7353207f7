"""A local OAuth2 token endpoint (RFC 6749 refresh_token grant) for XOAUTH2 tests.

Each refresh token it knows yields a new access token (registered with the IMAP
server as valid for the user) and a new refresh token (rotated, as Microsoft
does); a refresh token used once is spent. `refuse` makes it answer an error.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class TakesTokens(Protocol):
    """A server that accepts the access tokens the endpoint hands out (user -> token):
    the in-process IMAP server, the Graph server."""

    tokens: dict[str, str]


@dataclass
class TokenEndpoint:
    imap: TakesTokens
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    refuse: str | None = None  # an OAuth2 error code to answer with
    requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._numbers = itertools.count(1)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                endpoint.requests.append(form)
                status, body = endpoint.answer(form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.refuse:
            return 400, {"error": self.refuse, "error_description": "refused by the test"}
        if form.get("grant_type") != "refresh_token" or form.get("client_id") != "test-client":
            return 400, {"error": "invalid_request"}
        user = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        if user is None:
            return 400, {"error": "invalid_grant", "error_description": "Token has been revoked."}
        n = next(self._numbers)
        access, refresh = f"access-{n}", f"refresh-{n}"
        self.imap.tokens[user] = access
        self.refresh_tokens[refresh] = user
        return 200, {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
