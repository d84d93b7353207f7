"""Delivery after things went wrong: a crash while sending, claims of a process or
host that is gone, a copy to Sent taken by one process only, an outcome that could
not be recorded, and `gateway queue retry` and `cancel`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.mail_queue import retry
from gateway.models import DeliveryState, OutboundMessage, OutboundRecipient
from outbound.delivery import Delivery
from outbound.results import LOST
from outbound.smtp_client import Result
from tests.helpers.outbound import (
    MESSAGE,
    client_test_mx,
    deliver_once,
    outbound_config,
    queue_message,
    states,
)
from tests.peers.dns import ZoneServer
from tests.peers.smtp_sink import Sink


def test_a_crash_while_sending_resends_only_to_whom_did_not_get_it(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test", "dan@client.test"])
    # As a process killed in the middle: claimed (sending), Carol's delivery recorded.
    delivery = Delivery(db, cfg)
    [job] = delivery.claim(10)
    with db.session() as session:
        carol = session.scalars(
            select(OutboundRecipient).where(OutboundRecipient.address == "carol@client.test")
        ).one()
        carol.state = DeliveryState.SENT.value
    assert delivery.claim(10) == []  # a message being sent is not claimed twice
    restarted = Delivery(db, cfg)
    assert restarted.recover() == 1
    deliver_once(restarted)
    assert [r.recipients for r in mx.received] == [["dan@client.test"]]
    assert states(db, message_id)[0] == "sent"
    assert job.recipients == ["carol@client.test", "dan@client.test"]


def test_after_a_crash_a_process_takes_back_only_its_own_messages(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """Two delivery processes (or nodes) share the queue: the one started in place of
    a dead one resumes what that one was sending, never what the other is sending."""
    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    first = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    second = queue_message(db, cfg, MESSAGE, ["dan@client.test"])
    one, two = (
        Delivery(db, cfg, owner="host-a/delivery-1"),
        Delivery(db, cfg, owner="host-a/delivery-2"),
    )
    [job_one] = one.claim(1)
    [job_two] = two.claim(1)
    assert (job_one.id, job_two.id) == (first, second)
    with db.read() as session:
        owners = dict(session.execute(select(OutboundMessage.id, OutboundMessage.claimed_by)).all())
    assert owners == {first: "host-a/delivery-1", second: "host-a/delivery-2"}

    # delivery-1 dies; its successor (same name) starts while delivery-2 is still sending.
    successor = Delivery(db, cfg, owner="host-a/delivery-1")
    assert successor.recover() == 1
    assert states(db, first)[0] == "deferred" and states(db, second)[0] == "sending"
    deliver_once(successor)
    two.attempt(job_two)
    assert sorted(r.recipients[0] for r in mx.received) == ["carol@client.test", "dan@client.test"]
    assert states(db, first)[0] == states(db, second)[0] == "sent"


def test_claims_of_a_host_gone_for_good_expire(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """A process renews the claims of what it is sending; a claim not renewed for
    [cluster] lease seconds (its host died and never came back) is taken back by any
    other process, and the message is sent from there."""

    from gateway.models import utcnow

    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    lost = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    alive = queue_message(db, cfg, MESSAGE, ["dan@client.test"])
    gone, here = (
        Delivery(db, cfg, owner="host-b/delivery"),
        Delivery(db, cfg, owner="host-a/delivery"),
    )
    [job_lost] = gone.claim(1)
    [job_alive] = here.claim(1)
    long_ago = utcnow() - timedelta(seconds=cfg.cluster.lease + 1)
    with db.session() as session:
        for message_id in (lost, alive):
            session.get_one(OutboundMessage, message_id).updated_at = long_ago
    here.renew({job_alive.id})  # host-a is alive and says so; host-b says nothing
    assert here.expire() == 1
    assert states(db, lost)[0] == "deferred" and states(db, alive)[0] == "sending"
    deliver_once(here)
    here.attempt(job_alive)
    assert sorted(r.recipients[0] for r in mx.received) == ["carol@client.test", "dan@client.test"]
    assert job_lost.id == lost


def test_a_copy_to_sent_is_made_by_one_process_only(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """A copy still missing is taken with a lease before it is made: another process
    finds it taken and leaves it; one taken by a process that died is due again once
    the lease is over."""

    from gateway.models import utcnow
    from outbound.sent_copy import COPY_LEASE

    made: list[tuple[int, str]] = []

    def copy(user_id: int, raw: bytes, message_id: str, via_mailbox: bool) -> str:
        made.append((user_id, message_id))
        # Meanwhile another process looks at the same message: it is taken.
        assert other.copy_to_sent(sent) is None
        assert other.copies_due(10) == []
        return "appended"

    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    sent = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    deliver_once(Delivery(db, cfg))
    with db.session() as session:
        session.get_one(OutboundMessage, sent).sent_copy = None  # a stop before the copy
    one = Delivery(db, cfg, sent_copy=copy, owner="host-a/delivery-1")
    other = Delivery(db, cfg, sent_copy=copy, owner="host-a/delivery-2")
    assert one.copies_due(10) == [sent]
    assert one.copy_to_sent(sent) == "appended"
    assert len(made) == 1
    assert other.copy_to_sent(sent) is None  # done: never again

    # Two processes that read the same missing copy at once: only one takes it.
    with db.session() as session:
        session.get_one(OutboundMessage, sent).sent_copy = None
    with db.read() as session:
        message = session.get_one(OutboundMessage, sent)
        seen = (message.sent_copy, message.updated_at)
    assert one.copies is not None and other.copies is not None
    assert one.copies._take_copy(sent, *seen, tries=0) is True
    assert other.copies._take_copy(sent, *seen, tries=0) is False

    # A process took the copy and died: not due until the lease is over.
    with db.session() as session:
        message = session.get_one(OutboundMessage, sent)
        message.sent_copy, message.updated_at = "copying 2", utcnow()
    assert other.copies_due(10) == []
    with db.session() as session:
        session.get_one(OutboundMessage, sent).updated_at = utcnow() - timedelta(
            seconds=COPY_LEASE + 1
        )
    assert other.copies_due(10) == [sent]


def test_a_message_whose_outcome_could_not_be_recorded_goes_back_to_the_queue(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """The database fails just when the remote's answer is to be recorded: the message
    is not left `sending` until a restart; the role gives it back to the queue once
    the database answers, and it is sent again (the remote got it twice: the window
    RFC 1047 describes, here as wide as the database outage)."""
    import asyncio
    import time

    from sqlalchemy.exc import OperationalError

    from outbound.delivery_role import DeliveryRole

    cfg = outbound_config(
        config, zone_server, direct_port=mx.port, retry_base=0.01, poll_interval=0.05
    )
    client_test_mx(zone_server)
    message_id = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    role = DeliveryRole(db, cfg)
    real = role.delivery.record_in
    failures = [OperationalError("UPDATE", {}, Exception("database is away"))]

    def record_in(connection: Any, job: Any, results: Any) -> str:
        if failures:
            raise failures.pop()
        return real(connection, job, results)

    role.delivery.record_in = record_in  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        await role.start()
        task = asyncio.create_task(role.run(stop))
        deadline = time.monotonic() + 10
        while states(db, message_id)[0] != "sent" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    assert states(db, message_id)[0] == "sent"
    assert len(mx.received) == 2


def test_retry_and_cancel(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    from gateway.mail_queue import cancel

    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    client_test_mx(zone_server)
    mx.rcpt_replies["carol@client.test"] = "550 5.7.1 Not today"
    first = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    delivery = Delivery(db, cfg)
    deliver_once(delivery)
    assert states(db, first)[0] == "bounced"
    del mx.rcpt_replies["carol@client.test"]
    assert retry(db, first) == 1  # the operator fixed it: try again now
    deliver_once(delivery)
    assert states(db, first)[0] == "sent"
    second = queue_message(db, cfg, MESSAGE, ["dan@client.test"])
    assert cancel(db, second) == 1
    deliver_once(delivery)
    assert states(db, second)[0] == "cancelled"
    assert [r.recipients for r in mx.received] == [["carol@client.test"]]


def test_a_node_that_lost_its_claim_sends_nothing_and_records_nothing(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """Fencing. Node A claims a message, then stops renewing (frozen, or cut off from
    the database) past the lease; node B takes the message back and sends it. When A
    wakes: what it tries to record is refused (the claim is B's), and it sends nothing
    more until a renewal goes through."""
    from dataclasses import replace

    from gateway.config import ClusterConfig
    from gateway.models import utcnow

    cfg = outbound_config(config, zone_server, direct_port=mx.port)
    cfg = replace(cfg, cluster=ClusterConfig(lease=5.0))
    client_test_mx(zone_server)
    message = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    a, b = Delivery(db, cfg, owner="node-a/delivery"), Delivery(db, cfg, owner="node-b/delivery")
    [job_a] = a.claim(1)
    with db.session() as session:  # A says nothing for longer than the lease
        session.get_one(OutboundMessage, message).updated_at = utcnow() - timedelta(seconds=6)
    assert b.expire() == 1
    deliver_once(b)  # B takes it over and sends it
    assert states(db, message)[0] == "sent" and len(mx.received) == 1
    # A wakes up holding a claim it lost: its outcome is not written.
    with db.connection() as connection:
        assert a.record_in(connection, job_a, {"carol@client.test": Result(250, "ok")}) == LOST
    assert states(db, message)[0] == "sent"
    # A renewal finds the claim is not A's any more; past the lease A sends nothing.
    a.renew({job_a.id})
    a.claimed_at[job_a.id] -= 6
    assert not a.holds(job_a.id)
    assert a.attempt(job_a) == {} and len(mx.received) == 1


def test_renewing_keeps_a_claim_alive_past_the_lease(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    from dataclasses import replace

    from gateway.config import ClusterConfig
    from gateway.models import utcnow

    cfg = replace(
        outbound_config(config, zone_server, direct_port=mx.port), cluster=ClusterConfig(lease=5.0)
    )
    message = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    a, b = Delivery(db, cfg, owner="node-a/delivery"), Delivery(db, cfg, owner="node-b/delivery")
    [job] = a.claim(1)
    a.claimed_at[job.id] -= 6  # claimed longer ago than the lease...
    with db.session() as session:
        session.get_one(OutboundMessage, message).updated_at = utcnow() - timedelta(seconds=6)
    a.renew({job.id})  # ...but renewed before anyone took it back
    assert a.holds(job.id) and b.expire() == 0 and states(db, message)[0] == "sending"


def test_the_heartbeat_keeps_a_slow_send_its_own(
    db: Database, config: Config, account_id: int, zone_server: ZoneServer, mx: Sink
) -> None:
    """A server that takes longer than the lease to answer: the delivery role's
    heartbeat renews the claim meanwhile, so another node looking for expired claims
    the whole time takes nothing back, and the message is sent once."""
    import time
    from dataclasses import replace

    from gateway.config import ClusterConfig
    from outbound.delivery_role import DeliveryRole
    from tests.helpers.roles import running
    from tests.helpers.wait import eventually

    cfg = outbound_config(config, zone_server, direct_port=mx.port, timeout=10.0)
    cfg = replace(cfg, cluster=ClusterConfig(lease=1.5))
    client_test_mx(zone_server)
    mx.hang = 4.0  # more than twice the lease
    message = queue_message(db, cfg, MESSAGE, ["carol@client.test"])
    other = Delivery(db, cfg, owner="node-b/delivery")
    taken_back = 0
    with running({"delivery": DeliveryRole(db, cfg, owner="node-a/delivery")}):
        eventually(lambda: states(db, message)[0] == "sending", 10)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            taken_back += other.expire()
            time.sleep(0.25)
        eventually(lambda: states(db, message)[0] == "sent", 15)
    assert taken_back == 0 and len(mx.received) == 1
