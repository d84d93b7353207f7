"""Webhook endpoints of an account, and what is sent to them (Standard Webhooks).

An endpoint has a URL (http or https; one that resolves to loopback, private or
link-local addresses is refused unless [security] allowed_private_networks allows
it), the event types it wants (none named: every one) and a secret `whsec_...`,
kept encrypted. Rotating the secret keeps the previous one signing too for a day,
so the CRM can switch without a gap. Each delivery is a POST of

    {"type": "message.received", "timestamp": "...", "data": {...}}

with the headers webhook-id (the same for every try of a delivery),
webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of
id.timestamp.body>", one per secret in force), verifiable with the standardwebhooks
library.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from gateway import events
from gateway.config import Config
from gateway.errors import Conflict, InputError, NotFound
from gateway.models import WebhookDelivery, WebhookEndpoint, WebhookState, utcnow
from gateway.netguard import check_host
from gateway.resolver import Resolver
from gateway.vault import Vault

# The outbox's kinds that are delivered, and the type each is delivered as.
PUBLIC_TYPES = {
    "message.created": "message.received",
    "message.sent": "message.sent",
    "message.bounced": "message.bounced",
    "message.delivery_failed": "message.delivery_failed",
    "conversation.created": "conversation.created",
    "contact.created": "contact.created",
    "contact.updated": "contact.updated",
    "mailbox.connected": "mailbox.connected",
    "mailbox.reconnect_required": "mailbox.reconnect_required",
    "mailbox.sync_completed": "mailbox.sync_completed",
    "domain.dns_failed": "domain.dns_failed",
    "meeting.created": "meeting.created",
    "meeting.updated": "meeting.updated",
    "meeting.cancelled": "meeting.cancelled",
    "webhook.test": "webhook.test",
}
EVENT_TYPES = tuple(dict.fromkeys(PUBLIC_TYPES.values()))
TEST = "webhook.test"
ROTATION_GRACE = timedelta(hours=24)  # the previous secret signs too, this long


@dataclass(frozen=True)
class Target:
    """Where a delivery goes: the URL, the checked address to connect to."""

    url: str
    host: str
    port: int
    address: str
    tls: bool


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def check_url(config: Config, url: str) -> Target:
    """The URL's checked address, or InputError saying why it cannot be used."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("url", "must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise InputError("url", "must not hold a user name or password")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = check_host(
        parts.hostname,
        port,
        config.security.allowed_private_networks,
        what="url",
        resolver=Resolver(config.dns) if config.dns.nameservers else None,
    )
    return Target(url, parts.hostname, port, address, parts.scheme == "https")


def checked_types(event_types: Sequence[str]) -> list[str]:
    """The event types an endpoint wants, each once (InputError: one is unknown)."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise InputError("event_types", f"unknown: {', '.join(unknown)}")
    return list(dict.fromkeys(event_types))


def add_endpoint(
    session: Session,
    config: Config,
    vault: Vault,
    account_id: int,
    url: str,
    event_types: Sequence[str] = (),
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown once)."""
    check_url(config, url)
    wanted = checked_types(event_types)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=url,
        secret=vault.encrypt(secret),
        event_types=wanted,
        enabled=True,
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def get_endpoint(session: Session, account_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
        )
    )
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def list_endpoints(session: Session, account_id: int) -> Sequence[WebhookEndpoint]:
    return session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id)
        .order_by(WebhookEndpoint.id)
    ).all()


def rotate_secret(session: Session, vault: Vault, endpoint: WebhookEndpoint) -> str:
    """A new secret (shown once); the old one keeps signing for ROTATION_GRACE."""
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_until = utcnow() + ROTATION_GRACE
    endpoint.secret = vault.encrypt(secret)
    return secret


def remove_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """The endpoint goes, with its deliveries (none is tried again)."""
    session.delete(endpoint)


def send_test(session: Session, endpoint: WebhookEndpoint) -> None:
    """A webhook.test event for this endpoint alone (whatever types it wants)."""
    events.emit(session, endpoint.account_id, TEST, endpoint_id=endpoint.id)


def deliveries_of(
    session: Session, endpoint: WebhookEndpoint, limit: int = 50
) -> Sequence[WebhookDelivery]:
    """The endpoint's deliveries, newest first: its delivery log."""
    return session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()


def retry_delivery(session: Session, account_id: int, delivery_id: int) -> WebhookDelivery:
    """Try a delivery (pending or failed) again now."""
    delivery = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.account_id == account_id
        )
    )
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if delivery.state == WebhookState.SENDING.value:
        raise Conflict(f"delivery {delivery_id} is being tried right now")
    if delivery.state == WebhookState.DELIVERED.value:
        raise Conflict(f"delivery {delivery_id} was delivered already")
    delivery.state = WebhookState.PENDING.value
    delivery.next_attempt_at = utcnow()
    return delivery


def enable(endpoint: WebhookEndpoint) -> None:
    endpoint.enabled, endpoint.disabled_reason = True, None


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return endpoint.enabled and (not endpoint.event_types or event_type in endpoint.event_types)


def signed_headers(
    secrets_in_force: Sequence[str], message_id: str, sent_at: datetime, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one try: a signature per secret in force."""
    signatures = " ".join(Webhook(s).sign(message_id, sent_at, body) for s in secrets_in_force)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def secrets_in_force(vault: Vault, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    return in_force(vault, endpoint.secret, endpoint.previous_secret, endpoint.previous_until, now)


def in_force(
    vault: Vault,
    secret: str,
    previous: str | None,
    previous_until: datetime | None,
    now: datetime,
) -> list[str]:
    """The secrets that sign now: the endpoint's, and during a rotation the previous."""
    found = [vault.decrypt(secret)]
    if previous and previous_until and previous_until > now:
        found.append(vault.decrypt(previous))
    return found
