"""Webhooks delivered to a local HTTP receiver, each verified with the standardwebhooks
package: signatures (both during a rotation), retries after a 500 or while the
receiver is down with the same webhook-id, 410 disabling the endpoint, a hanging
endpoint that holds up no other, a restart in the middle (nothing lost, nothing sent
twice), event-type filters, and private addresses refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from admin.webhook_delivery import Dispatcher
from admin.webhook_role import WebhooksRole
from gateway.config import Config, SecurityConfig, WebhooksConfig
from gateway.contacts import add_contact
from gateway.db import Database
from gateway.directory import AccountDirectory
from gateway.errors import InputError
from gateway.models import Account, WebhookDelivery, WebhookEndpoint
from gateway.vault import Vault, ensure_key_file
from gateway.webhooks import add_endpoint, rotate_secret, send_test
from tests.helpers.roles import running
from tests.helpers.wait import eventually
from tests.peers.webhook_receiver import Receiver


@pytest.fixture
def hooks_config(config: Config) -> Config:
    ensure_key_file(config.secret_key_file)
    return replace(
        config,
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        webhooks=WebhooksConfig(
            retry_delays=(0.05, 0.05, 0.05), timeout=1.0, poll_interval=0.05, concurrency=4
        ),
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def endpoint(db: Database, config: Config, account_id: int, url: str, *types: str) -> str:
    with db.session() as session:
        vault = Vault.load(config.secret_key_file)
        return add_endpoint(session, config, vault, account_id, url, types)[1]


def new_contact(db: Database, config: Config, account_id: int, email: str) -> None:
    with db.session() as session:
        directory = AccountDirectory.load(session, session.get_one(Account, account_id), config)
        add_contact(session, directory, [email], email.split("@")[0], "lower")


def deliver(dispatcher: Dispatcher) -> list[str]:
    dispatcher.fan_out()
    return [dispatcher.attempt(job) for job in dispatcher.claim(50)]


def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    secret = endpoint(db, hooks_config, account_id, receiver.url)
    new_contact(db, hooks_config, account_id, "carol@client.com")
    assert deliver(Dispatcher(db, hooks_config)) == ["delivered"]
    [request] = receiver.requests
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "contact.created"
    assert payload["data"]["emails"] == ["carol@client.com"]
    assert request.headers["webhook-id"].startswith("evt_")
    assert request.headers["content-type"] == "application/json"
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(request.body, request.headers)


def test_a_500_or_a_receiver_that_is_down_is_retried_with_the_same_id(
    db: Database, hooks_config: Config, account_id: int
) -> None:
    down = Receiver()
    port = down.port
    down.close()  # nothing listens there for now
    secret = endpoint(db, hooks_config, account_id, f"http://127.0.0.1:{port}/hooks")
    new_contact(db, hooks_config, account_id, "carol@client.com")
    dispatcher = Dispatcher(db, hooks_config)
    assert deliver(dispatcher) == ["pending"]  # refused: tried again later
    back = Receiver(statuses=[500, 200], port=port)
    try:
        with running({"webhooks": WebhooksRole(db, hooks_config)}):
            eventually(lambda: len(back.requests) == 2, seconds=10)
            eventually(lambda: _states(db) == ["delivered"], seconds=10)
    finally:
        back.close()
    ids = {r.headers["webhook-id"] for r in back.requests}
    assert len(ids) == 1  # one message, tried again: the same id
    for request in back.requests:
        Webhook(secret).verify(request.body, request.headers)
    with db.read() as session:
        [delivery] = session.scalars(select(WebhookDelivery)).all()
        assert delivery.attempts == 3 and delivery.last_status == 200


def test_tries_run_out_and_410_disables_the_endpoint(
    db: Database, hooks_config: Config, account_id: int
) -> None:
    failing, gone = Receiver(statuses=[503]), Receiver(statuses=[410])
    try:
        endpoint(db, hooks_config, account_id, failing.url)
        endpoint(db, hooks_config, account_id, gone.url)
        new_contact(db, hooks_config, account_id, "carol@client.com")
        with running({"webhooks": WebhooksRole(db, hooks_config)}):
            eventually(lambda: sorted(_states(db)) == ["failed", "failed"], seconds=10)
        assert len(failing.requests) == 4  # the first try and 3 retries
        assert len(gone.requests) == 1
        with db.read() as session:
            by_url = {e.url: e for e in session.scalars(select(WebhookEndpoint))}
        assert by_url[failing.url].enabled
        assert not by_url[gone.url].enabled and "410" in (by_url[gone.url].disabled_reason or "")
    finally:
        failing.close()
        gone.close()


def test_a_hanging_endpoint_holds_up_no_other(
    db: Database, hooks_config: Config, account_id: int
) -> None:
    config = replace(
        hooks_config, webhooks=replace(hooks_config.webhooks, timeout=5.0, per_endpoint=2)
    )
    hanging, fast = Receiver(delay=3.0), Receiver()
    try:
        endpoint(db, config, account_id, hanging.url)
        endpoint(db, config, account_id, fast.url)
        for n in range(6):
            new_contact(db, config, account_id, f"c{n}@client.com")
        with running({"webhooks": WebhooksRole(db, config)}):
            eventually(lambda: len(fast.requests) == 6, seconds=10)
            # The hanging endpoint has at most its own slots, never the others'.
            assert len(hanging.requests) <= 2
            eventually(lambda: len(hanging.requests) == 6, seconds=30)
    finally:
        hanging.close()
        fast.close()


def test_a_restart_in_the_middle_loses_nothing_and_sends_nothing_twice(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    endpoint(db, hooks_config, account_id, receiver.url)
    for n in range(3):
        new_contact(db, hooks_config, account_id, f"c{n}@client.com")
    first = Dispatcher(db, hooks_config, owner="host/worker")
    first.fan_out()
    claimed = first.claim(1)
    assert len(claimed) == 1  # claimed, then the process dies before trying it
    again = Dispatcher(db, hooks_config, owner="host/worker")
    assert again.recover() == 1
    assert sorted(deliver(again)) == ["delivered"] * 3
    assert deliver(again) == []
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 3


def test_event_types_and_test_events(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    endpoint(db, hooks_config, account_id, receiver.url, "message.sent")
    new_contact(db, hooks_config, account_id, "carol@client.com")  # not wanted
    with db.session() as session:
        [made] = session.scalars(select(WebhookEndpoint)).all()
        send_test(session, made)
    assert deliver(Dispatcher(db, hooks_config)) == ["delivered"]
    [request] = receiver.requests
    assert json.loads(request.body)["type"] == "webhook.test"


def test_a_rotated_secret_and_the_previous_one_both_sign(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    old = endpoint(db, hooks_config, account_id, receiver.url)
    with db.session() as session:
        [made] = session.scalars(select(WebhookEndpoint)).all()
        new = rotate_secret(session, Vault.load(hooks_config.secret_key_file), made)
    new_contact(db, hooks_config, account_id, "carol@client.com")
    deliver(Dispatcher(db, hooks_config))
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "contact.created"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hooks",  # loopback
        "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "http://10.0.0.8/hooks",  # private
        "ftp://example.org/hooks",
        "http://user:pass@example.org/hooks",
    ],
)
def test_urls_to_private_addresses_are_refused_unless_allowed(
    db: Database, config: Config, account_id: int, url: str
) -> None:
    ensure_key_file(config.secret_key_file)
    with pytest.raises(InputError):
        endpoint(db, config, account_id, url)


def _states(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)))


def test_meeting_events_reach_the_endpoints_subscribed_to_them(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    from tests.helpers.pipeline import push
    from tests.peers import invites

    secret = endpoint(
        db, hooks_config, account_id, receiver.url, "meeting.created", "meeting.cancelled"
    )
    push(db, hooks_config, invites.google(sequence=0))
    push(db, hooks_config, invites.google(sequence=1, summary="Moved"))  # updated: not wanted
    push(db, hooks_config, invites.cancel(sequence=2))
    assert deliver(Dispatcher(db, hooks_config)) == ["delivered", "delivered"]
    sent = [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [p["type"] for p in sent] == ["meeting.created", "meeting.cancelled"]
    created = sent[0]["data"]
    assert created["uid"] == "7kukuqrfedlm2f9t0vr8u4bp5k@google.com"
    assert created["summary"] == "Contract review" and created["status"] == "confirmed"
    assert created["start"] == "2026-12-10T15:00:00+00:00" and created["method"] == "REQUEST"
    assert sent[1]["data"]["status"] == "cancelled"


def test_a_claim_lost_to_another_node_is_not_recorded_and_a_renewed_one_stays(
    db: Database, hooks_config: Config, account_id: int, receiver: Receiver
) -> None:
    """Fencing: A claims a delivery and stops renewing past [cluster] lease; B takes it
    back and delivers it. What A records afterwards is refused. A claim that is
    renewed is not taken back."""
    from datetime import timedelta

    from admin.webhook_delivery import LOST
    from admin.webhook_http import Answer
    from gateway.config import ClusterConfig
    from gateway.models import utcnow

    config = replace(hooks_config, cluster=ClusterConfig(lease=5.0))
    endpoint(db, config, account_id, receiver.url)
    new_contact(db, config, account_id, "carol@client.com")
    new_contact(db, config, account_id, "dan@client.com")
    a, b = Dispatcher(db, config, "node-a/webhooks"), Dispatcher(db, config, "node-b/webhooks")
    a.fan_out()
    lost, kept = a.claim(2)
    with db.session() as session:
        for job in (lost, kept):
            session.get_one(WebhookDelivery, job.id).updated_at = utcnow() - timedelta(seconds=6)
    assert a.renew({kept.id}) == {kept.id}  # A still speaks for this one
    assert b.expire() == 1
    [taken] = b.claim(5)
    assert taken.id == lost.id and b.attempt(taken) == "delivered"
    assert a.record(lost, Answer(500, None, "late")) == LOST
    assert a.renew({lost.id}) == set()  # not A's any more
    with db.session() as session:
        row = session.get_one(WebhookDelivery, lost.id)
        assert row.state == "delivered" and row.last_status == 204  # B's, not A's 500
    assert a.attempt(kept) == "delivered"
    a.close()
    b.close()
