"""A local OAuth2 authorization server (a small Starlette app under uvicorn, on loopback)
standing in for Google's or Microsoft's sign-in page in the connect flow's tests.

GET /authorize checks the client, the redirect URI and the PKCE S256 challenge, and
shows a consent page (Allow / Deny) for the address in login_hint. Allow sends the
browser back with a one-time code; Deny with error=access_denied. POST /token trades
a code for tokens only with the client's secret, the same redirect URI and the
verifier whose S256 hash is the challenge (RFC 7636 4.6); the access token is
registered with the IMAP server (XOAUTH2) and, given a sink, the SMTP server.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.peers.imap_faults import FaultyImap


@dataclass
class AuthServer:
    imap: FaultyImap
    client_id: str = "gateway-test-client"
    client_secret: str = "gateway-test-secret"
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    smtp_tokens: dict[str, str] = field(default_factory=dict)  # email -> last access token

    def __post_init__(self) -> None:
        self._numbers = itertools.count(1)
        app = Starlette(
            routes=[
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/authorize", self._decide, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
            ]
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the authorization server did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    # -- the endpoints -------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.authorize_requests.append(q)
        problems = []
        if q.get("client_id") != self.client_id:
            problems.append("unknown client_id")
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) < 43:
            problems.append("a PKCE S256 code_challenge is required")
        if not q.get("state"):
            problems.append("state is required")
        if not q.get("redirect_uri", "").endswith("/mailboxes/connect/callback"):
            problems.append("redirect_uri is not registered")
        if problems:
            return HTMLResponse("<h1>Bad request</h1><p>" + "; ".join(problems), 400)
        email = q.get("login_hint") or "bob@acme.com"
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in {**q, "email": email}.items()
        )
        body = (
            "<!doctype html><html lang=en><title>Test provider</title><main>"
            f"<h1>Allow the gateway to read and send mail as {html.escape(email)}?</h1>"
            f'<form method="post">{hidden}'
            '<button name="decision" value="allow">Allow</button>'
            '<button name="decision" value="deny">Deny</button></form></main>'
        )
        return HTMLResponse(body)

    async def _decide(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        back = {"state": form["state"]}
        if form.get("decision") != "allow":
            back.update(error="access_denied", error_description="The user said no")
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = form
            back["code"] = code
        return RedirectResponse(f"{form['redirect_uri']}?{urlencode(back)}", status_code=303)

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        granted = self.codes.pop(form.get("code", ""), None)  # one use only
        if granted is None or granted["redirect_uri"] != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = form.get("code_verifier", "").encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if digest.decode() != granted["code_challenge"]:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "PKCE verification failed"}, 400
            )
        email = granted["email"]
        number = next(self._numbers)
        access = f"access-{number}"
        self.imap.tokens[email] = access
        self.smtp_tokens[email] = access
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": f"refresh-{number}",
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": granted.get("scope", ""),
                "id_token": _unsigned_jwt({"email": email, "sub": email}),
            }
        )


def _unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
