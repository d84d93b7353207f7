"""The work of the webhooks role, callable without it (tests, the CLI):

fan_out: events not yet dispatched -> a delivery per endpoint that wants the
         type (its body rendered once: every try sends the same), dispatched_at
         set, in one transaction (FOR UPDATE SKIP LOCKED on PostgreSQL)
claim:   due deliveries of enabled endpoints -> sending, claimed_by this process
attempt: POST, signed with every secret in force, to the checked address
record:  2xx delivered; 410 failed and the endpoint disabled; anything else
         (or no answer) retried after [webhooks] retry_delays (jittered; a
         longer Retry-After wins) until they run out, then failed
renew:   the webhooks role's heartbeat moves its claims' time on, every third of
         [cluster] lease
expire:  a claim not renewed for the lease (its process died, froze or lost the
         database) is due again; what that process records of it later is refused
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from admin.webhook_http import Answer, post
from gateway.config import Config
from gateway.db import Database
from gateway.errors import InputError
from gateway.group_commit import GroupCommitter
from gateway.models import (
    Event,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookState,
    table_of,
    utcnow,
)
from gateway.prepared import prepared
from gateway.vault import Vault
from gateway.webhooks import (
    PUBLIC_TYPES,
    check_url,
    in_force,
    signed_headers,
    wants,
)

log = logging.getLogger(__name__)
LOST = "lost"  # record: the claim was no longer this process's, nothing was written
FAN_OUT_BATCH = 500
_deliveries, _endpoints = table_of(WebhookDelivery), table_of(WebhookEndpoint)
# What a try found: one statement compiled once, every column given (the hot path).
# Fenced: written only while this process still holds the claim.
_RESULT = prepared(
    "webhook_result",
    lambda: update(_deliveries).where(
        _deliveries.c.id == bindparam("b_id"),
        _deliveries.c.state == WebhookState.SENDING.value,
        _deliveries.c.claimed_by == bindparam("b_owner"),
    ),
    (
        "state",
        "attempts",
        "last_status",
        "last_error",
        "claimed_by",
        "updated_at",
        "delivered_at",
        "next_attempt_at",
    ),
)


@dataclass(frozen=True)
class Job:
    id: int
    endpoint_id: int
    url: str
    message_id: str  # webhook-id: the same for every try
    body: bytes
    secrets: list[str]
    attempts: int


class Dispatcher:
    def __init__(self, db: Database, config: Config, owner: str | None = None) -> None:
        self.db = db
        self.config = config
        self.owner = owner or f"{socket.gethostname()}/serve"
        self.vault = Vault.load(config.secret_key_file)
        self._recording: GroupCommitter[Connection] | None = None
        self._lock = threading.Lock()

    def fan_out(self, limit: int = FAN_OUT_BATCH) -> int:
        """Deliveries for up to `limit` events not yet dispatched; how many events."""
        now = utcnow()
        with self.db.session() as session:
            events = session.execute(
                select(Event.id, Event.account_id, Event.kind, Event.payload, Event.created_at)
                .where(Event.dispatched_at.is_(None))
                .order_by(Event.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not events:
                return 0
            endpoints: dict[int, list[WebhookEndpoint]] = defaultdict(list)
            for endpoint in session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.account_id.in_({e.account_id for e in events}),
                    WebhookEndpoint.enabled.is_(True),
                )
            ):
                endpoints[endpoint.account_id].append(endpoint)
            rows = [
                _delivery_row(event, endpoint, now)
                for event in events
                for endpoint in endpoints[event.account_id]
                if _for(event, endpoint)
            ]
            if rows:
                session.execute(insert(WebhookDelivery), rows)
            session.execute(
                update(Event).where(Event.id.in_([e.id for e in events])).values(dispatched_at=now)
            )
        return len(events)

    def claim(
        self,
        limit: int,
        busy: Set[int] = frozenset(),
        room: Callable[[int], int] | None = None,
    ) -> list[Job]:
        """Up to `limit` due deliveries, now `sending`; none to an endpoint in `busy`,
        and at most `room(endpoint id)` to each (the rest stay due, untouched)."""
        now = utcnow()
        d, e = _deliveries.c, _endpoints.c
        query = (
            select(
                d.id,
                d.endpoint_id,
                d.event_id,
                d.payload,
                d.attempts,
                e.url,
                e.secret,
                e.previous_secret,
                e.previous_until,
            )
            .join(_endpoints, e.id == d.endpoint_id)
            .where(
                d.state == WebhookState.PENDING.value,
                d.next_attempt_at <= now,
                e.enabled.is_(True),
            )
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
            .with_for_update(of=_deliveries, skip_locked=True)
        )
        if busy:
            query = query.where(d.endpoint_id.not_in(list(busy)))
        jobs = []
        taken: Counter[int] = Counter()
        secrets: dict[int, list[str]] = {}  # decrypted once per endpoint per claim
        with self.db.connection() as connection:
            for row in connection.execute(query).all():
                if room is not None and taken[row.endpoint_id] >= room(row.endpoint_id):
                    continue
                taken[row.endpoint_id] += 1
                if row.endpoint_id not in secrets:
                    secrets[row.endpoint_id] = in_force(
                        self.vault, row.secret, row.previous_secret, row.previous_until, now
                    )
                jobs.append(
                    Job(
                        row.id,
                        row.endpoint_id,
                        row.url,
                        f"evt_{row.event_id}",
                        json.dumps(row.payload, separators=(",", ":")).encode("utf-8"),
                        secrets[row.endpoint_id],
                        row.attempts,
                    )
                )
            if jobs:
                connection.execute(
                    update(_deliveries)
                    .where(d.id.in_([job.id for job in jobs]))
                    .values(state=WebhookState.SENDING.value, claimed_by=self.owner, updated_at=now)
                )
        return jobs

    def attempt(self, job: Job) -> str:
        """One try of `job`, recorded; returns the delivery's new state."""
        try:
            target = check_url(self.config, job.url)  # again: DNS may have changed
            now = utcnow()
            headers = signed_headers(job.secrets, job.message_id, now, job.body)
            answer = post(target, job.body, headers, self.config.webhooks.timeout)
        except InputError as exc:
            answer = Answer(0, None, f"refused: {exc}")
        except OSError as exc:
            answer = Answer(0, None, f"no answer: {exc.strerror or exc!r}"[:500])
        return self.record(job, answer)

    def record(self, job: Job, answer: Answer) -> str:
        now = utcnow()
        delays = self.config.webhooks.retry_delays
        attempts = job.attempts + 1
        values: dict[str, Any] = {
            "b_id": job.id,
            "b_owner": self.owner,
            "attempts": attempts,
            "last_status": answer.status or None,
            "last_error": None if 200 <= answer.status < 300 else answer.text,
            "claimed_by": None,
            "updated_at": now,
            "delivered_at": None,
            "next_attempt_at": now,
        }
        if 200 <= answer.status < 300:
            values.update(state=WebhookState.DELIVERED.value, delivered_at=now)
        elif answer.status == 410 or attempts > len(delays):
            values.update(state=WebhookState.FAILED.value)
        else:
            wait = delays[attempts - 1] * random.uniform(0.9, 1.1)
            if answer.retry_after is not None:
                wait = max(wait, min(answer.retry_after, max(delays)))
            values.update(
                state=WebhookState.PENDING.value, next_attempt_at=now + timedelta(seconds=wait)
            )

        def write(connection: Connection) -> bool:
            written = _RESULT(connection).execute(connection, values)
            if not getattr(written, "rowcount", 0):
                return False  # the claim ran out: another process has it now
            if answer.status == 410:
                connection.execute(
                    update(WebhookEndpoint)
                    .where(WebhookEndpoint.id == job.endpoint_id)
                    .values(enabled=False, disabled_reason=f"410 Gone at {now.isoformat()}")
                )
            return True

        # Deliveries finishing at once share a commit (one fsync, one turn at the lock).
        if not self._recorder().call(write):
            log.warning(
                "webhooks: delivery %s: its claim ran out while it was sent; not recorded here",
                job.id,
            )
            return LOST
        if answer.status == 410:
            log.warning("webhooks: endpoint %s answered 410: disabled", job.endpoint_id)
        return str(values["state"])

    def _recorder(self) -> GroupCommitter[Connection]:
        with self._lock:
            if self._recording is None:
                self._recording = GroupCommitter(self.db.connection, name="webhook-record")
            return self._recording

    def close(self) -> None:
        """Commit what is being recorded, then stop the recording thread."""
        with self._lock:
            recording, self._recording = self._recording, None
        if recording is not None:
            recording.close()

    def give_back(self, ids: list[int]) -> None:
        """Claimed deliveries not tried after all (a stop): due again, as they were."""
        with self.db.session() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.claimed_by == self.owner)
                .values(state=WebhookState.PENDING.value, claimed_by=None)
            )

    def recover(self) -> int:
        """Deliveries this process's predecessor left `sending` are due again."""
        return self._release(WebhookDelivery.claimed_by == self.owner)

    def renew(self, ids: set[int]) -> set[int]:
        """The claims of deliveries this process holds live on; those still its own."""
        if not ids:
            return set()
        with self.db.session() as session:
            renewed = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(ids),
                    WebhookDelivery.state == WebhookState.SENDING.value,
                    WebhookDelivery.claimed_by == self.owner,
                )
                .values(updated_at=utcnow())
                .returning(WebhookDelivery.id)
            )
            return {int(i) for i in renewed.scalars()}

    def expire(self) -> int:
        """Claims not renewed for [cluster] lease (a process that died) are due again."""
        stale = utcnow() - timedelta(seconds=self.config.cluster.lease)
        return self._release(WebhookDelivery.updated_at < stale)

    def _release(self, which: Any) -> int:
        with self.db.session() as session:
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.state == WebhookState.SENDING.value, which)
                .values(state=WebhookState.PENDING.value, claimed_by=None, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)


def _for(event: Any, endpoint: WebhookEndpoint) -> bool:
    public = PUBLIC_TYPES.get(event.kind)
    if public is None:
        return False
    if public == "webhook.test":  # only to the endpoint it tests, whatever it wants
        return bool(event.payload.get("endpoint_id") == endpoint.id)
    return wants(endpoint, public)


def _delivery_row(event: Any, endpoint: WebhookEndpoint, now: datetime) -> dict[str, Any]:
    public = PUBLIC_TYPES[event.kind]
    return {
        "account_id": event.account_id,
        "endpoint_id": endpoint.id,
        "event_id": event.id,
        "event_type": public,
        "payload": {
            "type": public,
            "timestamp": event.created_at.isoformat(),
            "data": event.payload,
        },
        "state": WebhookState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
