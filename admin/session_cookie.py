"""The session cookie and the CSRF tokens of the pages.

The cookie `gateway_session` holds the session id, signed (itsdangerous) with a
key derived from the secret key file, HttpOnly, SameSite=Lax, path /, and Secure
when the request came over https or `[web] public_url` is https. It has no
Max-Age: the server ends sessions (gateway.web_sessions), the browser forgets
the cookie when it closes.

A CSRF token is an HMAC of a seed the attacker cannot read: the session id once
signed in, and before that a random value in the `gateway_pre` cookie (the sign-in
form, against login CSRF). Every form carries it as `csrf_token`, and a script
calling the API with the cookie sends it as `X-CSRF-Token`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer
from starlette.requests import Request
from starlette.responses import Response

from gateway.config import Config
from gateway.vault import Vault

SESSION = "gateway_session"
PRE = "gateway_pre"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Keys:
    cookie: Signer
    csrf: bytes

    @classmethod
    def of(cls, vault: Vault) -> Keys:
        return cls(Signer(vault.derive("web session cookie")), vault.derive("web csrf"))


def session_token(request: Request, keys: Keys) -> str | None:
    """The session id the request's cookie holds, if its signature is ours."""
    value = request.cookies.get(SESSION)
    if not value:
        return None
    try:
        return keys.cookie.unsign(value).decode("ascii")
    except (BadSignature, UnicodeDecodeError):
        return None


def set_session(
    response: Response, request: Request, config: Config, keys: Keys, token: str
) -> None:
    response.set_cookie(
        SESSION,
        keys.cookie.sign(token).decode("ascii"),
        httponly=True,
        samesite="lax",
        secure=secure(request, config),
        path="/",
    )
    response.delete_cookie(PRE, path="/")


def clear_session(response: Response, request: Request, config: Config) -> None:
    response.delete_cookie(
        SESSION, path="/", httponly=True, samesite="lax", secure=secure(request, config)
    )


def pre_seed(request: Request) -> str:
    """The signed-out visitor's CSRF seed: their `gateway_pre` cookie, or a new one
    (then `keep_pre` sets it on the response)."""
    seed = request.cookies.get(PRE) or ""
    return seed if len(seed) >= 32 else secrets.token_urlsafe(32)


def keep_pre(response: Response, request: Request, config: Config, seed: str) -> None:
    if request.cookies.get(PRE) != seed:
        response.set_cookie(
            PRE, seed, httponly=True, samesite="lax", secure=secure(request, config), path="/"
        )


def csrf_token(keys: Keys, seed: str) -> str:
    mac = hmac.new(keys.csrf, seed.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def csrf_ok(keys: Keys, seed: str | None, given: str | None) -> bool:
    if not seed or not given:
        return False
    return hmac.compare_digest(csrf_token(keys, seed), given)


def secure(request: Request, config: Config) -> bool:
    return request.url.scheme == "https" or config.web.public_url.startswith("https:")


def client_ip(request: Request) -> str:
    """The client's address (uvicorn has applied X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else ""
