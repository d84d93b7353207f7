"""Cursor pagination: `limit` (1 to 200) and `cursor` in, `data` and `next_cursor` out.

A cursor names the last id of the page before and the query it belongs to, signed
with a key derived from the secret key file (the same on every node). A cursor that
was changed, forged, or belongs to another query or account is a 400 problem, never
a silent restart from the first page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from gateway.errors import InputError, InvalidCursor
from gateway.vault import Vault

MAX_LIMIT = 200


class Cursors:
    def __init__(self, vault: Vault) -> None:
        self._key = vault.derive("api cursors")

    def make(self, last_id: int, query: Mapping[str, Any]) -> str:
        body = json.dumps({"after": last_id, "q": _fingerprint(query)}, separators=(",", ":"))
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:16]
        return _b64(body.encode()) + "." + _b64(mac)

    def after(self, cursor: str | None, query: Mapping[str, Any]) -> int:
        """The id a page starts after (0: the first page)."""
        if not cursor:
            return 0
        try:
            body_text, mac_text = cursor.split(".", 1)
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError as exc:
            raise InvalidCursor("not a cursor this API gave") from exc
        good = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, good):
            raise InvalidCursor("not a cursor this API gave")
        given = json.loads(body)
        if given.get("q") != _fingerprint(query):
            raise InvalidCursor("belongs to another query: start again without it")
        after = given.get("after")
        if not isinstance(after, int) or after < 0:
            raise InvalidCursor("not a cursor this API gave")
        return after


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError("limit", f"must be from 1 to {MAX_LIMIT}")
    return limit


def page(rows: list[Any], limit: int, cursors: Cursors, query: Mapping[str, Any]) -> dict[str, Any]:
    """`rows` (up to limit + 1 of them, by id) as a page: data and the next cursor."""
    more = len(rows) > limit
    data = rows[:limit]
    next_cursor = cursors.make(int(data[-1]["id"]), query) if more and data else None
    return {"data": data, "next_cursor": next_cursor}


def _fingerprint(query: Mapping[str, Any]) -> str:
    text = json.dumps(dict(sorted(query.items())), separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(text) from exc
