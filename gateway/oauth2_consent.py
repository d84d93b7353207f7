"""A person's consent to a mailbox: the OAuth2 authorization-code flow with PKCE (authlib).

`start()` gives the provider's sign-in URL with a fresh `state` and a PKCE S256
challenge (RFC 7636) whose verifier the caller keeps until the person comes back;
`finish()` trades the code for tokens at the token endpoint, sending the verifier.
The address signed in is read from the ID token (OpenID Connect's `email`, or
Microsoft's `preferred_username`); the ID token comes straight from the token
endpoint over TLS, so its signature need not be checked (OpenID Connect Core
3.1.3.7). Endpoints, client ids and scopes are [oauth2]'s.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from requests import RequestException

from gateway.config import Config
from gateway.oauth2 import GOOGLE, ISSUER, TokenError, Tokens, refused, token_url

ISSUER_NAMES = {GOOGLE: "Google", "microsoft": "Microsoft"}


@dataclass(frozen=True)
class Started:
    url: str  # where to send the person
    state: str
    verifier: str


@dataclass(frozen=True)
class Finished:
    tokens: Tokens
    email: str | None  # the address the person signed in as, if the ID token says


def missing(config: Config, provider: str) -> str | None:
    """What the operator must set before `provider`'s sign-in works, or None."""
    issuer = ISSUER.get(provider)
    if issuer is None:
        return f"{provider} has no OAuth2 sign-in"
    _, client_id, _ = token_url(config, issuer)
    if not client_id:
        return f"[oauth2] {issuer}_client_id and {issuer}_client_secret"
    return None


def start(config: Config, provider: str, redirect_uri: str, login_hint: str = "") -> Started:
    issuer = _issuer(config, provider)
    verifier = generate_token(64)  # 64 characters of [A-Za-z0-9]: RFC 7636 4.1
    extra: dict[str, str] = {}
    if issuer == GOOGLE:
        extra = {"access_type": "offline", "prompt": "consent"}  # a refresh token every time
    else:
        extra = {"prompt": "select_account"}
    if login_hint:
        extra["login_hint"] = login_hint
    with _client(config, issuer, redirect_uri) as client:
        url, state = client.create_authorization_url(
            authorize_url(config, issuer), code_verifier=verifier, **extra
        )
    return Started(url, state, verifier)


def finish(config: Config, provider: str, redirect_uri: str, code: str, verifier: str) -> Finished:
    """The tokens for `code`, or TokenError (kind "person" when the code was refused)."""
    issuer = _issuer(config, provider)
    url, _, _ = token_url(config, issuer)
    try:
        with _client(config, issuer, redirect_uri) as client:
            answer = client.fetch_token(
                url,
                grant_type="authorization_code",
                code=code,
                code_verifier=verifier,
                timeout=config.oauth2.timeout,
            )
    except OAuthError as exc:
        raise refused(str(exc.error or ""), str(exc.description or "")) from exc
    except (RequestException, ValueError) as exc:
        raise TokenError("transient", f"token endpoint {url}: {exc}") from exc
    tokens = Tokens.from_answer(dict(answer), now=time.time(), previous=None)
    return Finished(tokens, _email_of(answer.get("id_token")))


def _issuer(config: Config, provider: str) -> str:
    need = missing(config, provider)
    if need is not None:
        raise TokenError("operator", f"{provider} sign-in needs {need}")
    return ISSUER[provider]


def _client(config: Config, issuer: str, redirect_uri: str) -> OAuth2Session:
    _, client_id, secret = token_url(config, issuer)
    scope = config.oauth2.google_scope if issuer == GOOGLE else config.oauth2.microsoft_scope
    session = OAuth2Session(
        client_id=client_id,
        client_secret=secret or None,
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post" if secret else "none",
    )
    session.trust_env = False  # no proxy from the environment: [oauth2]'s URLs as given
    return session


def authorize_url(config: Config, issuer: str) -> str:
    o = config.oauth2
    if issuer == GOOGLE:
        return o.google_authorize_url
    return o.microsoft_authorize_url.replace("{tenant}", o.microsoft_tenant)


def _email_of(id_token: Any) -> str | None:
    """The `email` (or `preferred_username`) claim of an ID token, unverified (see above)."""
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    for name in ("email", "preferred_username"):
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return value
    return None
