"""The housekeeping role's periodic jobs (gateway.housekeeping, gateway.periodic), on
SQLite and PostgreSQL: each job runs on one node per period, whichever claims it; a
node that died in the middle leaves it due for another; a node that lost the job's
lease deletes nothing more. The cleanup removes what outlived its use and nothing
live; the retention removes finished records past [housekeeping] keep_days and
nothing a user still sees."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from gateway.config import Config, HousekeepingConfig
from gateway.db import Database
from gateway.housekeeping import JOBS, cleanup, retention
from gateway.leases import Fence, LeaseLost, claim_due, fencing
from gateway.models import (
    DropboxRefusal,
    Event,
    IdempotencyKey,
    Lease,
    OutboundMessage,
    RawMessage,
    SignInFailure,
    User,
    WebhookDelivery,
    WebhookEndpoint,
    WebSession,
    utcnow,
)
from gateway.periodic import Job, run_due
from tests.helpers.mail import make_message
from tests.helpers.mailboxes import mailbox_row
from tests.helpers.outbound import queue_message
from tests.helpers.pipeline import count, push

LONG_AGO = timedelta(days=45)


def _unfenced(db: Database) -> Fence:
    """A real job lease for calling a job directly."""
    [(key, generation)] = claim_due(db, "job", "test", ["direct"], 1, 60).items()
    return fencing("job", key, "test", generation)


def _ago(delta: timedelta) -> datetime:
    return utcnow() - delta


def test_each_job_runs_once_a_period_on_whichever_node_claims_it(
    db: Database, config: Config
) -> None:
    ran: list[str] = []

    def work(db: Database, config: Config, fence: Fence) -> int:
        with db.session() as session:
            fence(session)
        ran.append(threading.current_thread().name)
        return 1

    jobs = (Job("tick", lambda c: 3600.0, work),)
    results: list[dict[str, int]] = []

    def node(name: str) -> None:
        results.append(run_due(db, config, name, jobs))

    nodes = [threading.Thread(target=node, args=(f"node-{i}",)) for i in range(3)]
    for t in nodes:
        t.start()
    for t in nodes:
        t.join()
    assert len(ran) == 1 and sorted(r.get("tick", 0) for r in results) == [0, 0, 1]
    assert run_due(db, config, "node-1", jobs) == {}  # not due for an hour
    with db.session() as session:  # an hour later
        session.execute(update(Lease).where(Lease.key == "tick").values(due_at=_ago(timedelta(1))))
    assert run_due(db, config, "node-2", jobs) == {"tick": 1}


def test_a_job_whose_node_died_is_due_again_and_one_that_lost_its_lease_writes_nothing(
    db: Database, config: Config
) -> None:
    # node-a claimed the job and died before finishing it: the lease runs out...
    held = claim_due(db, "job", "node-a", ["cleanup"], 1, config.cluster.lease)
    jobs = (JOBS[0],)
    assert run_due(db, config, "node-b", jobs) == {}  # ...not before
    with db.session() as session:
        session.execute(
            update(Lease).where(Lease.key == "cleanup").values(expires_at=_ago(timedelta(1)))
        )
    assert run_due(db, config, "node-b", jobs) == {"cleanup": 0}
    # node-a wakes: its fence refuses the writes of the job it had.
    stale = fencing("job", "cleanup", "node-a", held["cleanup"])
    with db.session() as session, pytest.raises(LeaseLost):
        stale(session)


def test_cleanup_removes_what_outlived_its_use_and_keeps_the_rest(
    db: Database, config: Config, account_id: int
) -> None:
    now = utcnow()
    mailbox_id = mailbox_row(db, config, "bob@acme.com", "pw")
    with db.session() as session:
        user_id = session.scalar(select(User.id).where(User.account_id == account_id))
        assert user_id is not None
        for name, age, ended in (
            ("too old", timedelta(days=60), None),
            ("live", timedelta(hours=1), None),
            ("ended", timedelta(days=3), timedelta(days=2)),
        ):
            session.add(
                WebSession(
                    id_sha256=name,
                    account_id=account_id,
                    user_id=user_id,
                    created_at=now - age,
                    last_seen_at=now - age,
                    ended_at=now - ended if ended else None,
                )
            )
        session.add_all(
            [SignInFailure(key="ip:1", at=_ago(timedelta(days=1))), SignInFailure(key="ip:2")]
        )
        session.add_all(
            IdempotencyKey(
                account_id=account_id,
                key=k,
                request_sha256="x",
                status=200,
                answer="{}",
                created_at=at,
            )
            for k, at in (("old", _ago(timedelta(days=2))), ("new", now))
        )
        session.add_all(
            DropboxRefusal(
                account_id=account_id, user_id=user_id, mail_from=f"r{i}@d.e", refused_at=at
            )
            for i, at in enumerate((_ago(timedelta(days=8)), now))
        )
        session.add_all(
            [
                Lease(kind="imap", key="99999", generation=3, due_at=now),  # removed mailbox
                Lease(kind="imap", key=str(mailbox_id), generation=3, due_at=now),
                Lease(
                    kind="imap:nodes",
                    key="gone/background",
                    holder="gone/background",
                    expires_at=_ago(timedelta(days=2)),
                    due_at=now,
                ),
                Lease(
                    kind="imap:nodes",
                    key="alive/background",
                    holder="alive/background",
                    expires_at=now + timedelta(seconds=60),
                    due_at=now,
                ),
            ]
        )
    cleanup(db, config, _unfenced(db))
    with db.read() as session:
        assert session.scalars(select(WebSession.id_sha256)).all() == ["live"]
        assert session.scalars(select(SignInFailure.key)).all() == ["ip:2"]
        assert session.scalars(select(IdempotencyKey.key)).all() == ["new"]
        assert session.scalars(select(DropboxRefusal.mail_from)).all() == ["r1@d.e"]
        kept = {(row.kind, row.key) for row in session.execute(select(Lease.kind, Lease.key))}
    assert ("imap", "99999") not in kept and ("imap:nodes", "gone/background") not in kept
    assert {("imap", str(mailbox_id)), ("imap:nodes", "alive/background")} <= kept


def test_retention_removes_finished_records_past_keep_days_and_nothing_a_user_sees(
    db: Database, config: Config, account_id: int
) -> None:
    config = replace(config, housekeeping=HousekeepingConfig(keep_days=30))
    old, new = _ago(LONG_AGO), utcnow()
    with db.session() as session:
        endpoint = WebhookEndpoint(account_id=account_id, url="https://crm.test/h", secret="s")
        session.add(endpoint)
        session.flush()
        events = {}
        for name, at in (("old", old), ("old-retrying", old), ("new", new)):
            event = Event(
                account_id=account_id,
                kind="message.created",
                payload={"n": name},
                created_at=at,
                dispatched_at=at,
            )
            session.add(event)
            session.flush()
            events[name] = event.id
        for name, state, at in (
            ("old", "delivered", old),
            ("old-retrying", "pending", old),
            ("new", "delivered", new),
        ):
            session.add(
                WebhookDelivery(
                    account_id=account_id,
                    endpoint_id=endpoint.id,
                    event_id=events[name],
                    event_type="message.created",
                    state=state,
                    updated_at=at,
                )
            )
    shown = queue_message(db, config, make_message(subject="shown"), ["carol@client.test"])
    hidden = queue_message(db, config, make_message(subject="gone"), ["carol@client.test"])
    waiting = queue_message(db, config, make_message(subject="waiting"), ["carol@client.test"])
    with db.session() as session:
        raw = session.scalar(
            select(RawMessage.data)
            .join(OutboundMessage, OutboundMessage.raw_message_id == RawMessage.id)
            .where(OutboundMessage.id == shown)
        )
        session.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id.in_([shown, hidden]))
            .values(state="sent", updated_at=old)
        )
        session.execute(
            update(OutboundMessage).where(OutboundMessage.id == waiting).values(updated_at=old)
        )  # still queued: kept whatever its age
        hidden_raw = session.get_one(OutboundMessage, hidden).raw_message_id
    assert raw is not None
    stored = push(db, config, raw)  # the sent mail on a timeline shares its bytes
    raws = count(db, RawMessage)

    removed = retention(db, config, _unfenced(db))

    with db.read() as session:
        assert session.scalars(
            select(Event.payload).where(Event.id.in_(events.values()))
        ).all() == [{"n": "old-retrying"}, {"n": "new"}]
        assert sorted(session.scalars(select(WebhookDelivery.state))) == ["delivered", "pending"]
        assert session.scalars(select(OutboundMessage.id)).all() == [waiting]
        assert session.get(RawMessage, hidden_raw) is None
        assert stored.message_id is not None  # its bytes stay
    assert count(db, RawMessage) == raws - 1
    assert removed == 1 + 1 + 2  # a delivery, an event, two finished messages
    keep_all = replace(config, housekeeping=HousekeepingConfig(keep_days=0))
    assert retention(db, keep_all, _unfenced(db)) == 0
