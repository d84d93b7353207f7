"""POST /api/v1/messages over real HTTP on loopback: JSON fields and raw messages queued
(202 after the commit), bearer tokens, the user's own addresses only, and header
injection through the JSON refused with a 422 that names the field."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.config import Config
from gateway.db import Database
from gateway.models import OutboundMessage, RawMessage
from gateway.parsing import parse
from gateway.tokens import create_token
from outbound.delivery import Delivery
from tests.helpers.web import running_web
from tests.peers.dns import ZoneServer
from tests.peers.smtp_sink import Sink


@pytest.fixture
def token(db: Database, config: Config, account_id: int) -> str:
    with db.session() as session:
        return create_token(session, config, "bob@acme.com").token


def queued(db: Database) -> list[tuple[OutboundMessage, list[str], bytes]]:
    with db.read() as session:
        return [
            (
                m,
                [r.address for r in m.recipients],
                session.get_one(RawMessage, m.raw_message_id).data,
            )
            for m in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))
        ]


FIELDS = {
    "from": "Bob <bob@acme.com>",
    "to": ["Carol <carol@client.com>"],
    "cc": ["dan@client.com"],
    "bcc": ["boss@acme.com"],
    "subject": "Our offer, grüße",
    "text": "Hello Carol",
    "html": "<p>Hello Carol</p>",
    "in_reply_to": "<q-1@client.com>",
    "references": ["<q-1@client.com>"],
    "attachments": [{"filename": "offer.txt", "content_type": "text/plain", "content": "b2ZmZXI="}],
}


def post(
    url: str, token: str | None, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers or {})
    return httpx.post(f"{url}/api/v1/messages", headers=sent, timeout=30, **kwargs)


def test_json_fields_are_queued(db: Database, config: Config, token: str) -> None:
    with running_web(db, config) as url:
        answer = post(url, token, json=FIELDS)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    [(message, recipients, raw)] = queued(db)
    assert body["id"] == message.id and body["message_id"] == message.message_id_header
    assert recipients == ["carol@client.com", "dan@client.com", "boss@acme.com"]
    assert message.source == "api" and message.mail_from == "bob@acme.com"
    assert parse(raw).subject == "Our offer, grüße" and raw.split(b"\r\n\r\n")[0].isascii()
    assert b"In-Reply-To: <q-1@client.com>" in raw and b"Bcc: boss@acme.com" in raw
    assert b'filename="offer.txt"' in raw and raw.count(b"\n") == raw.count(b"\r\n")


def test_a_raw_message_is_queued_for_its_header_recipients(
    db: Database, config: Config, token: str
) -> None:
    raw = b"From: bob@acme.com\r\nTo: carol@client.com\r\nCc: dan@client.com\r\n\r\nhi\r\n"
    with running_web(db, config) as url:
        answer = post(url, token, content=raw, headers={"Content-Type": "message/rfc822"})
    assert answer.status_code == 202, answer.text
    [(_, recipients, stored)] = queued(db)
    assert recipients == ["carol@client.com", "dan@client.com"]
    assert stored.endswith(raw)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("subject", "hi\r\nBcc: victim@example.net", "subject"),
        ("subject", "hi\nX-Evil: 1", "subject"),
        ("subject", "nul\x00", "subject"),
        ("to", ["carol@client.com\r\nBcc: victim@example.net"], "to[0]"),
        ("in_reply_to", "<a@b>\r\nBcc: x@y.z", "in_reply_to"),
        ("subject", "=?utf-8?q?hi=0D=0ABcc:_victim@example.net?=", "subject"),
        ("attachments", [{"filename": "a\r\nb", "content": "aGk="}], "attachments[0].filename"),
    ],
)
def test_header_injection_is_refused_naming_the_field(
    db: Database, config: Config, token: str, field: str, value: object, named: str
) -> None:
    with running_web(db, config) as url:
        answer = post(url, token, json={**FIELDS, field: value})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert named in answer.json()["detail"]
    assert queued(db) == []


def test_tokens_addresses_and_limits(db: Database, config: Config, token: str) -> None:
    from dataclasses import replace

    small = replace(
        config,
        submission=replace(config.submission, max_message_size=5_000, max_messages_per_hour=1),
    )
    with running_web(db, small) as url:
        assert post(url, None, json=FIELDS).status_code == 401
        assert post(url, "gwt_000000000000_" + "x" * 43, json=FIELDS).status_code == 401
        ann = post(url, token, json={**FIELDS, "from": "ann@acme.com"})
        assert ann.status_code == 403 and "from" in ann.json()["detail"]
        unknown = post(url, token, json={**FIELDS, "priority": "high"})
        assert unknown.status_code == 422 and "priority" in unknown.json()["detail"]
        big = post(url, token, json={**FIELDS, "text": "x" * 10_000})
        assert big.status_code == 413
        assert post(url, token, json=FIELDS).status_code == 202
        limited = post(url, token, json=FIELDS)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3600"
        wrong_type = post(url, token, content=b"x", headers={"Content-Type": "text/plain"})
        assert wrong_type.status_code == 415
        spec = httpx.get(f"{url}/api/v1/openapi.json").json()
    assert "/api/v1/messages" in spec["paths"]
    assert len(queued(db)) == 1


def test_attachments_must_be_base64(db: Database, config: Config, token: str) -> None:
    bad = [{"filename": "a.bin", "content": "not base64!"}]
    with running_web(db, config) as url:
        answer = post(url, token, json={**FIELDS, "attachments": bad})
    assert answer.status_code == 422
    assert "attachments[0].content" in answer.json()["detail"]
    assert base64  # (imported for readers: contents are base64)


def test_the_delivery_report_of_a_message(
    db: Database, config: Config, token: str, zone_server: ZoneServer
) -> None:
    """GET /api/v1/deliveries/{id}: the CRM reads what became of each recipient, the
    remote's reply to a bounce included; only the token's user's own messages."""
    from tests.helpers.outbound import client_test_mx, outbound_config

    mx = Sink(rcpt_replies={"dan@client.test": "550 5.1.1 no such user"})
    try:
        cfg = outbound_config(config, zone_server, direct_port=mx.port)
        client_test_mx(zone_server)
        fields = {**FIELDS, "to": ["carol@client.test"], "cc": ["dan@client.test"], "bcc": []}
        with running_web(db, cfg) as url:
            queued_id = post(url, token, json=fields).json()["id"]
            waiting = httpx.get(f"{url}/api/v1/deliveries/{queued_id}", headers=bearer(token))
            delivery = Delivery(db, cfg)
            for job in delivery.claim(10):
                delivery.attempt(job)
            delivery.close()
            report = httpx.get(f"{url}/api/v1/deliveries/{queued_id}", headers=bearer(token))
            with db.session() as session:
                other = create_token(session, cfg, "ann@acme.com").token
            foreign = httpx.get(f"{url}/api/v1/deliveries/{queued_id}", headers=bearer(other))
            anonymous = httpx.get(f"{url}/api/v1/deliveries/{queued_id}")
            missing = httpx.get(f"{url}/api/v1/deliveries/999999", headers=bearer(token))
    finally:
        mx.close()
    assert waiting.status_code == 200 and waiting.json()["state"] == "queued"
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["state"] == "sent" and body["attempts"] == 1
    by_address = {r["address"]: r for r in body["recipients"]}
    assert by_address["carol@client.test"]["state"] == "sent"
    assert by_address["dan@client.test"]["state"] == "bounced"
    assert "550 5.1.1 no such user" in by_address["dan@client.test"]["last_reply"]
    assert foreign.status_code == 404 and missing.status_code == 404
    assert anonymous.status_code == 401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_body(
    db: Database, config: Config, token: str
) -> None:
    import concurrent.futures

    key = {"Idempotency-Key": "order-4711"}
    with running_web(db, config) as url:
        first = post(url, token, headers=key, json=FIELDS)
        again = post(url, token, headers=key, json=FIELDS)
        other = post(url, token, headers=key, json={**FIELDS, "subject": "Another"})
        fresh = post(url, token, headers={"Idempotency-Key": "order-4712"}, json=FIELDS)
        racing = {"Idempotency-Key": "order-4713"}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            raced = list(
                pool.map(lambda _: post(url, token, headers=racing, json=FIELDS), range(4))
            )
        bad = post(url, token, headers={"Idempotency-Key": "x" * 201}, json=FIELDS)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.status_code == 409 and "another request" in other.json()["detail"]
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]
    assert {r.status_code for r in raced} == {202} and len({r.json()["id"] for r in raced}) == 1
    assert bad.status_code == 422
    assert len(queued(db)) == 3  # order-4711, order-4712 and order-4713, once each
