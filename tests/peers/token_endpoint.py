"""A local OAuth2 token endpoint (RFC 6749 refresh_token grant) for XOAUTH2 tests.

Each refresh token it knows yields a new access token (registered with the IMAP
server as valid for the user) and a new refresh token (rotated, as Microsoft
does); a refresh token used once is spent. `refuse` makes it answer an error.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from tests.peers.http_thread import HttpThread, send_json


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
                send_json(self, status, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = HttpThread(Handler)

    @property
    def url(self) -> str:
        return f"{self._http.origin}/token"

    def stop(self) -> None:
        self._http.stop()

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
