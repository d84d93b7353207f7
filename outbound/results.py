"""Recording what each recipient's server said, in the caller's transaction (the
delivery role group-commits these for several messages):

    2xx -> sent; 5xx -> bounced (the remote reply kept; event message.bounced);
    anything else -> deferred with exponential backoff (jittered) until
    [outbound] max_age, then bounced ("gave up after N days"; event
    message.delivery_failed: no server refused it, it could not be delivered).

A message is sent once every recipient is final and one was sent (event
message.sent); it then joins the user's mail as an outbound sighting, which the
pipeline attaches to the recipients' contacts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from gateway.config import Config
from gateway.events import emit
from gateway.models import (
    DeliveryState,
    Keep,
    OutboundMessage,
    OutboundRecipient,
    Source,
    table_of,
    utcnow,
)
from gateway.prepared import prepared
from gateway.store import Arrival, accept_in
from outbound.claims import PENDING, Job
from outbound.smtp_client import Result

MESSAGE_SENT = "message.sent"
MESSAGE_BOUNCED = "message.bounced"
MESSAGE_DELIVERY_FAILED = "message.delivery_failed"
NO_MAILBOX = "no mailbox"  # the sent_copy outcome of a user without a connected mailbox
LOST = "lost"  # record_in: the claim was no longer this process's, nothing was written


def record_in(
    config: Config, connection: Connection, job: Job, results: dict[str, Result], owner: str
) -> str:
    """What each recipient's server said, in the caller's transaction (the delivery
    role group-commits these); returns the message's new state, or LOST (nothing
    written) when `owner` no longer holds the claim: its lease ran out and the message
    went back to the queue, maybe to another node, which records its own tries."""
    # The recipients, read only while the claim is still `owner`'s (one statement).
    held = connection.execute(_HELD_RECIPIENTS, {"b_id": job.id, "b_owner": owner}).all()
    if not held:  # a queued message has at least one recipient: the claim is gone
        return LOST
    now = utcnow()
    final = _record_recipients(config, connection, job, results, now, held)
    states = {state for _, state in final}
    attempts = job.attempts + 1
    next_attempt, sent_copy = now, None
    if DeliveryState.DEFERRED.value in states or DeliveryState.QUEUED.value in states:
        message_state = DeliveryState.DEFERRED.value
        outbound = config.outbound
        wait = min(outbound.retry_max, outbound.retry_base * 2 ** (attempts - 1))
        next_attempt = now + timedelta(seconds=wait * random.uniform(0.9, 1.1))
    elif DeliveryState.SENT.value in states:
        message_state = DeliveryState.SENT.value
        sent_copy = None if job.copy else NO_MAILBOX
        _sent(connection, job, final)
    elif DeliveryState.CANCELLED.value in states and DeliveryState.BOUNCED.value not in states:
        message_state = DeliveryState.CANCELLED.value
    else:
        message_state = DeliveryState.BOUNCED.value
    _MESSAGE_RESULT(connection).execute(
        connection,
        {
            "b_id": job.id,
            "state": message_state,
            "attempts": attempts,
            "next_attempt_at": next_attempt,
            "sent_copy": sent_copy,
            "updated_at": now,
        },
    )
    return message_state


def _record_recipients(
    config: Config,
    connection: Connection,
    job: Job,
    results: dict[str, Result],
    now: datetime,
    recipients: Sequence[Row[int, str, str, int]],
) -> list[tuple[str, str]]:
    """Each tried recipient's new state and the remote's reply (message.bounced for
    each bounce); returns (address, state) of every recipient of the message."""
    expired = job.age > config.outbound.max_age
    changes: list[dict[str, Any]] = []
    final: list[tuple[str, str]] = []
    for recipient_id, address, state, attempts in recipients:
        result = results.get(address)
        if result is None or state not in PENDING:
            final.append((address, state))
            continue
        state, reply = _outcome(result, expired, job.age)
        if state == DeliveryState.BOUNCED.value:
            # Refused by the remote (a bounce), or given up on after [outbound]
            # max_age of temporary failures (nobody refused it: delivery failed).
            emit(
                connection,
                job.account_id,
                MESSAGE_BOUNCED if result.permanent else MESSAGE_DELIVERY_FAILED,
                id=job.id,
                message_id=job.message_id,
                recipient=address,
                reply=reply,
            )
        final.append((address, state))
        changes.append(
            {
                "b_id": recipient_id,
                "state": state,
                "attempts": attempts + 1,
                "last_reply": reply,
                "updated_at": now,
            }
        )
    if changes:
        _RECIPIENT_RESULT(connection).execute_many(connection, changes)
    return final


def _outcome(result: Result, expired: bool, age: float) -> tuple[str, str]:
    """A recipient's new state and the reply kept for it."""
    reply = str(result)[:2000]
    if 200 <= result.code < 300:
        return DeliveryState.SENT.value, reply
    if result.permanent:
        return DeliveryState.BOUNCED.value, reply
    if expired:
        return DeliveryState.BOUNCED.value, (
            f"gave up after {age / 86400:.1f} days; last reply: {result}"[:2000]
        )
    return DeliveryState.DEFERRED.value, reply


def _sent(connection: Connection, job: Job, final: list[tuple[str, str]]) -> None:
    """The sent message joins the user's mail like any other: the pipeline attaches it
    to the recipients' contacts (and auto-creates new To, Cc and Bcc recipients where
    the account allows), and the copy the IMAP sync later finds in Sent is the same
    message, another sighting. Event message.sent. Its key cannot exist yet (this runs
    once, under the claim that moves the message to sent) and its bytes are the
    queued ones, stored already: one statement, not four."""
    accept_in(
        connection,
        job.raw,
        Arrival(
            job.user_id,
            Source.OUTBOUND,
            Keep.ALWAYS,
            source_key=f"outbound:{job.id}",
            account_id=job.account_id,
            new_key=True,
        ),
        job.raw_message_id,
    )
    emit(
        connection,
        job.account_id,
        MESSAGE_SENT,
        id=job.id,
        message_id=job.message_id,
        sent=[a for a, state in final if state == DeliveryState.SENT.value],
        bounced=[a for a, state in final if state == DeliveryState.BOUNCED.value],
    )


_om, _rc = table_of(OutboundMessage), table_of(OutboundRecipient)
_RECIPIENT_RESULT = prepared(
    "outbound_recipient_result",
    lambda: update(_rc).where(_rc.c.id == bindparam("b_id")),
    ("state", "attempts", "last_reply", "updated_at"),
)
# The message's recipients while the claim is still the process's, the claim locked
# until the outcome is committed (PostgreSQL): no other node can take the message
# back between this look and the writes.
_HELD_RECIPIENTS = (
    select(_rc.c.id, _rc.c.address, _rc.c.state, _rc.c.attempts)
    .join(_om, _om.c.id == _rc.c.message_id)
    .where(
        _om.c.id == bindparam("b_id"),
        _om.c.state == DeliveryState.SENDING.value,
        _om.c.claimed_by == bindparam("b_owner"),
    )
    .order_by(_rc.c.id)
    .with_for_update(of=_om)
)
_MESSAGE_RESULT = prepared(
    "outbound_message_result",
    lambda: update(_om).where(_om.c.id == bindparam("b_id")),
    ("state", "attempts", "next_attempt_at", "sent_copy", "updated_at"),
)
