"""Outbound helpers: the delivery config (routes, test DNS), queued messages, their
states, a mailbox that can send, and the submission role as the tests drive it."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, replace

from gateway.accounts import get_user
from gateway.config import Config, DnsConfig, OutboundConfig, SecurityConfig
from gateway.db import Database
from gateway.mail_queue import enqueue
from gateway.models import OutboundMessage
from gateway.vault import Vault, ensure_key_file
from outbound.delivery import Delivery
from outbound.hygiene import prepare
from tests.peers.dns import ZoneServer
from tests.peers.smtp_sink import Sink


def outbound_config(config: Config, zone: ZoneServer, **outbound: object) -> Config:
    """Delivery through the test DNS server to loopback peers; the direct route unless
    `outbound` says otherwise (the default, hold, sends nothing)."""
    ensure_key_file(config.secret_key_file)
    return replace(
        config,
        dns=DnsConfig(nameservers=(zone.address,), timeout=2.0),
        security=SecurityConfig(allowed_private_networks=("127.0.0.0/8",)),
        outbound=replace(
            OutboundConfig(),
            **{"timeout": 3.0, "default_route": "direct", **outbound},  # type: ignore[arg-type]
        ),
    )


def relay_config(config: Config, zone: ZoneServer, sink: Sink, **outbound: object) -> Config:
    """The relay route to `sink` (STARTTLS with a test certificate, AUTH)."""
    return outbound_config(
        config,
        zone,
        default_route="relay",
        relay_url=f"smtp://relayuser:relaypass@127.0.0.1:{sink.port}",
        relay_tls_verify=False,
        **outbound,
    )


def client_test_mx(zone: ZoneServer) -> None:
    """client.test's mail goes to mx.client.test, which is 127.0.0.1."""
    zone.clear()
    zone.set("client.test", "MX", (10, "mx.client.test"))
    zone.set("mx.client.test", "A", "127.0.0.1")


def queue_message(db: Database, config: Config, raw: bytes, recipients: list[str]) -> int:
    with db.read() as session:
        user = get_user(session, config, "bob@acme.com")
        session.expunge(user)
    return enqueue(db, user, "bob@acme.com", recipients, prepare(raw), "smtp").id


def states(db: Database, message_id: int) -> tuple[str, dict[str, tuple[str, str | None]]]:
    with db.read() as session:
        message = session.get_one(OutboundMessage, message_id)
        return message.state, {r.address: (r.state, r.last_reply) for r in message.recipients}


def deliver_once(delivery: Delivery) -> None:
    for job in delivery.claim(10):
        delivery.attempt(job)


def connect_sending_mailbox(
    db: Database, cfg: Config, account_id: int, sink: Sink, auth: str, secret: str
) -> None:
    from gateway.models import Mailbox

    vault = Vault.load(cfg.secret_key_file)
    with db.session() as session:
        bob = get_user(session, cfg, "bob@acme.com")
        session.add(
            Mailbox(
                account_id=account_id,
                user_id=bob.id,
                email="bob@acme.com",
                provider="gmail" if auth == "oauth2" else "other",
                imap_host="127.0.0.1",
                imap_port=1,
                imap_security="none",
                smtp_host="127.0.0.1",
                smtp_port=sink.port,
                smtp_security="starttls",
                username="relayuser",
                auth=auth,
                credentials=vault.encrypt(secret),
                tls_verify=False,
            )
        )


@dataclass
class Submission:
    port: int
    tls_port: int
    config: Config
    db: Database
    client_tls: ssl.SSLContext
    token: str  # bob@acme.com's

    def client(self, starttls: bool = True) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        client.ehlo("crm.test")
        if starttls:
            client.starttls(context=self.client_tls)
            client.ehlo("crm.test")
        return client

    def signed_in(self, user: str = "bob@acme.com", secret: str | None = None) -> smtplib.SMTP:
        client = self.client()
        client.login(user, secret or self.token)
        return client

    def implicit(self) -> smtplib.SMTP_SSL:
        client = smtplib.SMTP_SSL("127.0.0.1", self.tls_port, timeout=30, context=self.client_tls)
        client.ehlo("crm.test")
        return client


MESSAGE = (
    b"From: Bob <bob@acme.com>\r\nTo: carol@client.test\r\nBcc: boss@acme.com\r\n"
    b"Subject: Our offer\r\n\r\nHello Carol,\r\n"
)


def due_now(db: Database, message_id: int) -> None:
    with db.session() as session:
        message = session.get_one(OutboundMessage, message_id)
        message.next_attempt_at = message.created_at
