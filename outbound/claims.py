"""Claiming queued messages for sending, and the claims' leases.

claim: queued/deferred and due -> sending, claimed_by this process, in one
    transaction for several (FOR UPDATE SKIP LOCKED on PostgreSQL)
renew: every third of [cluster] lease a process moves its claims' time on (the
    delivery role's heartbeat, apart from its sending)
expire: a claim not renewed for the lease (its node gone, frozen or cut off from
    the database) goes back to the queue, for any process to take
recover: at start, the claims this process's predecessor left (a crash) go
    back to the queue; their recipients already sent stay sent
held: whether this process still holds a claim, in the transaction that records
    its outcome (outbound.results fences on it)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, and_, bindparam, select, update

from gateway.db import Database
from gateway.models import (
    DeliveryState,
    Mailbox,
    MailboxState,
    OutboundMessage,
    OutboundRecipient,
    RawMessage,
    User,
    table_of,
    utcnow,
)

PENDING = (DeliveryState.QUEUED.value, DeliveryState.DEFERRED.value)


@dataclass(frozen=True)
class Job:
    id: int
    account_id: int
    user_id: int
    route: str
    mail_from: str
    raw: bytes
    recipients: list[str]  # not yet sent or bounced
    attempts: int
    age: float  # seconds since it was queued
    message_id: str = ""  # the Message-ID header's value
    copy: bool = False  # the user has a connected mailbox: a copy goes to their Sent
    raw_message_id: int | None = None  # where `raw` is stored


class Claims:
    """The claims of one process (`owner`, "host/worker": unique among the processes
    sending from this database, and the same for the process started in place of one
    that died)."""

    def __init__(self, db: Database, owner: str, default_route: str, lease: float) -> None:
        self.db = db
        self.owner = owner
        self.default_route = default_route
        self.lease = lease  # seconds a claim lives unless renewed ([cluster] lease)

    def renew(self, ids: set[int]) -> set[int]:
        """The claims of the messages this process is sending are still alive (their
        time is moved on: see expire()); those that were still its own."""
        if not ids:
            return set()
        with self.db.session() as session:
            renewed = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id.in_(ids),
                    OutboundMessage.state == DeliveryState.SENDING.value,
                    OutboundMessage.claimed_by == self.owner,
                )
                .values(updated_at=utcnow())
                .returning(OutboundMessage.id)
            )
            return {int(i) for i in renewed.scalars()}

    def expire(self) -> int:
        """Messages `sending` whose claim was not renewed for the lease (their process,
        or node, died, froze or lost the database) go back to the queue."""
        stale = utcnow() - timedelta(seconds=self.lease)
        with self.db.session() as session:
            result = session.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.state == DeliveryState.SENDING.value,
                    OutboundMessage.updated_at < stale,
                )
                .values(state=DeliveryState.DEFERRED.value, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def recover(self, only: set[int] | None = None) -> int:
        """Messages this process's predecessor left `sending` (a crash) go back to the
        queue, their recipients already sent staying sent; those another process is
        sending are not touched. `only`: just these (whose outcome this process could
        not record)."""
        query = update(OutboundMessage).where(
            OutboundMessage.state == DeliveryState.SENDING.value,
            (OutboundMessage.claimed_by == self.owner) | OutboundMessage.claimed_by.is_(None),
        )
        if only is not None:
            query = query.where(OutboundMessage.id.in_(only))
        with self.db.session() as session:
            result = session.execute(
                query.values(state=DeliveryState.DEFERRED.value, next_attempt_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def claim(self, limit: int) -> list[Job]:
        """Up to `limit` messages that are due, now `sending` (one transaction, a few
        statements for all of them: the queue's hot path)."""
        now = utcnow()
        with self.db.connection() as connection:
            rows = connection.execute(_DUE, {"b_now": now, "b_limit": limit}).all()
            if not rows:
                return []
            recipients: dict[int, list[str]] = defaultdict(list)
            ids = [r.id for r in rows]
            for message_id, address in connection.execute(_PENDING_RECIPIENTS, {"b_ids": ids}):
                recipients[message_id].append(address)
            sending, copying = _mailbox_users(connection, {r.user_id for r in rows})
            jobs = []
            by_route: dict[str, list[int]] = defaultdict(list)
            for row in rows:
                route = row.route or ("mailbox" if row.user_id in sending else self.default_route)
                by_route[route].append(row.id)
                jobs.append(
                    Job(
                        row.id,
                        row.account_id,
                        row.user_id,
                        route,
                        row.mail_from,
                        row.data,
                        recipients[row.id],
                        row.attempts,
                        (now - row.created_at).total_seconds(),
                        row.message_id_header,
                        row.user_id in copying,
                        row.raw_message_id,
                    )
                )
            for route, claimed in by_route.items():
                values = {"b_ids": claimed, "b_route": route, "b_now": now, "b_owner": self.owner}
                connection.execute(_MARK_SENDING, values)
        return jobs


_om, _rc = table_of(OutboundMessage), table_of(OutboundRecipient)
# The claim's statements, built once (building a statement costs more than running it).
_users, _raws = table_of(User), table_of(RawMessage)
_DUE = (
    select(
        _om.c.id,
        _om.c.account_id,
        _om.c.user_id,
        _om.c.mail_from,
        _om.c.attempts,
        _om.c.created_at,
        _om.c.message_id_header,
        _users.c.route,
        _om.c.raw_message_id,
        _raws.c.data,
    )
    .join(_users, _users.c.id == _om.c.user_id)
    .join(_raws, _raws.c.id == _om.c.raw_message_id)
    .where(_om.c.state.in_(PENDING), _om.c.next_attempt_at <= bindparam("b_now"))
    .order_by(_om.c.next_attempt_at, _om.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(of=_om, skip_locked=True)
)
_PENDING_RECIPIENTS = (
    select(_rc.c.message_id, _rc.c.address)
    .where(_rc.c.message_id.in_(bindparam("b_ids", expanding=True)), _rc.c.state.in_(PENDING))
    .order_by(_rc.c.id)
)
_MARK_SENDING = (
    update(_om)
    .where(_om.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(
        state=DeliveryState.SENDING.value,
        route=bindparam("b_route"),
        updated_at=bindparam("b_now"),
        claimed_by=bindparam("b_owner"),
    )
)
# A connected mailbox that can send: an SMTP server to sign in to (one definition,
# for the claim's batch and for one user's route).
CAN_SEND = and_(Mailbox.smtp_host != "", Mailbox.smtp_port > 0)
_MAILBOXES = select(Mailbox.user_id, CAN_SEND).where(
    Mailbox.user_id.in_(bindparam("b_users", expanding=True)),
    Mailbox.state == MailboxState.ACTIVE.value,
)


def _mailbox_users(connection: Connection, users: set[int]) -> tuple[set[int], set[int]]:
    """Of `users`: (those with a connected mailbox that can send, those with any
    connected mailbox, whose Sent folder gets a copy)."""
    sending: set[int] = set()
    copying: set[int] = set()
    for user_id, can_send in connection.execute(_MAILBOXES, {"b_users": list(users)}):
        copying.add(user_id)
        if can_send:
            sending.add(user_id)
    return sending, copying
