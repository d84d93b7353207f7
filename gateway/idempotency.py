"""Idempotency-Key (the IETF draft's header) for requests that change something: the
first answer is kept 24 hours with the request's SHA-256; a replay of the same
request gets that answer again, the same key with another request is a Conflict.
The key is written in the transaction of the change it answers, so two replays at
once cannot both make it: the second one's insert fails, and it answers from the
first's row."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from gateway.errors import Conflict, InputError
from gateway.models import IdempotencyKey, utcnow

KEEP = timedelta(hours=24)
MAX_KEY = 200


@dataclass(frozen=True)
class Answered:
    status: int
    body: dict[str, Any]


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InputError("Idempotency-Key", f"1 to {MAX_KEY} printable characters")
    return key


def digest(*parts: bytes) -> str:
    found = hashlib.sha256()
    for part in parts:
        found.update(len(part).to_bytes(8, "big") + part)
    return found.hexdigest()


def answered(connection: Connection, account_id: int, key: str, request: str) -> Answered | None:
    """The first answer to this key, if it is still kept (Conflict: another request)."""
    row = connection.execute(
        select(IdempotencyKey.request_sha256, IdempotencyKey.status, IdempotencyKey.answer).where(
            IdempotencyKey.account_id == account_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at > utcnow() - KEEP,
        )
    ).first()
    if row is None:
        return None
    if row.request_sha256 != request:
        raise Conflict("this Idempotency-Key was used with another request")
    return Answered(row.status, json.loads(row.answer))


def remember_in(
    connection: Connection, account_id: int, key: str, request: str, answer: Answered
) -> None:
    """Keep `answer`, in the caller's transaction (IntegrityError: another request
    with this key committed first)."""
    connection.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.account_id == account_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at <= utcnow() - KEEP,
        )
    )
    connection.execute(
        insert(IdempotencyKey).values(
            account_id=account_id,
            key=key,
            request_sha256=request,
            status=answer.status,
            answer=json.dumps(answer.body),
            created_at=utcnow(),
        )
    )
