"""OAuth2 tokens of mailboxes: refreshing an access token, and what a refusal means.

Tokens are kept encrypted as JSON {access_token, refresh_token, expires_at}.
A refresh posts grant_type=refresh_token to the provider's token endpoint
([oauth2] in config); Microsoft rotates refresh tokens on every use, so the
answer's refresh token (when given) replaces the stored one.

Refusals are told apart by the `error` field (never by the text): invalid_grant,
interaction_required, consent_required and unauthorized_client mean a person must
sign in again (the mailbox goes to reconnect_required); invalid_client means the
operator's app is misconfigured; anything else (temporarily_unavailable, HTTP 429
or 5xx, no answer) is worth retrying later.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.errors import GatewayError

EARLY = 120  # seconds before expiry that a token counts as expired
PERSON = ("invalid_grant", "interaction_required", "consent_required", "unauthorized_client")
GOOGLE, MICROSOFT = "google", "microsoft"
ISSUER = {"gmail": GOOGLE, "microsoft365": MICROSOFT, "outlook": MICROSOFT}


class TokenError(GatewayError):
    """A refresh failed; `kind` is "person", "operator" or "transient", `code` the
    endpoint's `error` ("" when it gave none)."""

    def __init__(self, kind: str, message: str, code: str = "") -> None:
        self.kind = kind
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # Unix time

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) >= self.expires_at - EARLY

    def to_json(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Tokens:
        data = json.loads(text)
        return cls.from_answer(data, now=None, previous=None)

    @classmethod
    def from_answer(cls, data: Any, now: float | None, previous: Tokens | None) -> Tokens:
        """From a token endpoint's answer (or our stored JSON, or what a person gave)."""
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise TokenError("transient", "the token answer holds no access_token")
        expires_at = data.get("expires_at")
        if expires_at is None and isinstance(data.get("expires_in"), int | float):
            expires_at = (now if now is not None else time.time()) + float(data["expires_in"])
        refresh = data.get("refresh_token") or (previous.refresh_token if previous else None)
        return cls(data["access_token"], refresh, float(expires_at) if expires_at else None)


def token_url(config: Config, issuer: str) -> tuple[str, str, str]:
    """(url, client id, client secret) of `issuer`."""
    o = config.oauth2
    if issuer == GOOGLE:
        return o.google_token_url, o.google_client_id, o.google_client_secret
    url = o.microsoft_token_url.replace("{tenant}", o.microsoft_tenant)
    return url, o.microsoft_client_id, o.microsoft_client_secret


def refresh(config: Config, provider: str, tokens: Tokens, scope: str | None = None) -> Tokens:
    """A new access token from the refresh token (for `scope` when given: Microsoft
    gives a token for one resource at a time, so Graph's is asked for apart)."""
    issuer = ISSUER.get(provider)
    if issuer is None:
        raise TokenError("operator", f"provider {provider!r} has no OAuth2 sign-in")
    if not tokens.refresh_token:
        raise TokenError("person", "the access token expired and there is no refresh token")
    url, client_id, secret = token_url(config, issuer)
    if not client_id:
        raise TokenError("operator", f"[oauth2] {issuer}_client_id is not set")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens.refresh_token,
        "client_id": client_id,
    }
    if secret:
        form["client_secret"] = secret
    if scope:
        form["scope"] = scope
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=config.oauth2.timeout) as response:
            answer = json.loads(response.read(1024 * 1024) or b"{}")
    except urllib.error.HTTPError as exc:
        raise _refused(exc) from exc
    except (OSError, ValueError) as exc:
        raise TokenError("transient", f"token endpoint {url}: {exc}") from exc
    return Tokens.from_answer(answer, now=time.time(), previous=tokens)


def _refused(exc: urllib.error.HTTPError) -> TokenError:
    try:
        body = json.loads(exc.read(64 * 1024) or b"{}")
    except ValueError:
        body = {}
    code = str(body.get("error", "")) if isinstance(body, dict) else ""
    text = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if not code and exc.code in (401, 403):
        code = "invalid_client"
    return refused(code, text, f"{exc.code} ", "refresh")


def refused(code: str, text: str, status: str = "", what: str = "code") -> TokenError:
    """A token endpoint's refusal, told apart by its `error` (never by its words)."""
    message = f"the token endpoint refused the {what} ({status}{code}: {text})".replace(
        ":  ", ": "
    ).replace(": )", ")")
    if code in PERSON:
        return TokenError("person", message + "; the user must sign in again", code)
    if code == "invalid_client":
        return TokenError("operator", message + "; check [oauth2] client id and secret", code)
    return TokenError("transient", message, code)
