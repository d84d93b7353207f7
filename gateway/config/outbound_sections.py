"""The sections of mail going out: submission and delivery."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.doc import doc


@dataclass(frozen=True)
class SubmissionConfig:
    """The submission role: the SMTP server the CRM sends mail through (SMTP AUTH)."""

    listen: str = field(
        default="127.0.0.1:2587",
        metadata=doc('Address and port with STARTTLS (production: "0.0.0.0:587").'),
    )
    tls_listen: str = field(
        default="",
        metadata=doc('Address and port with implicit TLS ("0.0.0.0:465"); empty: none.'),
    )
    hostname: str = field(
        default="localhost",
        metadata=doc("Name the server gives in its greeting and EHLO reply."),
    )
    max_message_size: int = field(
        default=25 * 1024 * 1024,
        metadata=doc("Largest message accepted, in bytes (advertised with SIZE)."),
    )
    max_recipients: int = field(
        default=100, metadata=doc("Recipients per message; more get 452 4.5.3.")
    )
    max_errors: int = field(
        default=10, metadata=doc("Error replies before the connection is closed (421).")
    )
    timeout: float = field(
        default=300.0, metadata=doc("Seconds a client may stay silent (RFC 5321: 5 min).")
    )
    auth_failures: int = field(
        default=5,
        metadata=doc(
            "Failed AUTH attempts allowed per client IP and per user within "
            "auth_failure_window, counted in the database over every node; past them AUTH is "
            "refused (454 4.7.0) until the window passes."
        ),
    )
    proxy_protocol: bool = field(
        default=False,
        metadata=doc(
            "Expect a PROXY protocol (v1 or v2) header first on the listen port (STARTTLS), as "
            "behind a TCP load balancer: the client's address then counts for the AUTH "
            "failures and the log. Not on tls_listen, whose TLS handshake comes first."
        ),
    )
    auth_failure_window: float = field(
        default=600.0, metadata=doc("Seconds over which failed AUTH attempts are counted.")
    )
    auth_failure_delay: float = field(
        default=1.0, metadata=doc("Seconds before a failed AUTH is answered (slows guessing).")
    )
    max_messages_per_hour: int = field(
        default=1000,
        metadata=doc(
            "Messages one user may queue in any hour (SMTP and API together); past it MAIL "
            "gets 451 4.7.1. 0: no limit."
        ),
    )


@dataclass(frozen=True)
class OutboundConfig:
    """The delivery role: how queued mail leaves."""

    default_route: str = field(
        default="hold",
        metadata=doc(
            "Route of users who chose none and have no connected mailbox to send with: "
            "hold (nothing leaves this machine: their mail waits in the queue, deferred, "
            "until a route is set), direct (the recipients' MX hosts) or relay (relay_url). "
            "Per user: `gateway user route EMAIL mailbox|direct|relay`.",
            ("hold", "direct", "relay"),
        ),
    )
    relay_url: str = field(
        default="",
        metadata=doc(
            "The smarthost of the relay route: smtp://[user:password@]host[:port] (STARTTLS "
            "required, 587 by default) or smtps://... (implicit TLS, 465)."
        ),
    )
    relay_tls_verify: bool = field(
        default=True, metadata=doc("Verify the relay's certificate (off: a self-signed relay).")
    )
    direct_port: int = field(
        default=25,
        metadata=doc("Port of MX hosts for direct delivery (tests point it elsewhere)."),
    )
    helo_name: str = field(
        default="localhost",
        metadata=doc("Name given in EHLO; for direct delivery, the sending host's DNS name."),
    )
    sending_ips: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Public IP addresses that mail leaves from (direct delivery): the DNS page's "
            'SPF record allows them, e.g. ["203.0.113.25", "2001:db8::25"].'
        ),
    )
    spf_include: str = field(
        default="",
        metadata=doc(
            "A domain whose SPF record covers the senders you use (e.g. your relay's, "
            '"_spf.relay.example"): the SPF record includes it.'
        ),
    )
    max_age: float = field(
        default=5 * 24 * 3600.0,
        metadata=doc("Seconds a deferred recipient is retried before it bounces (5 days)."),
    )
    retry_base: float = field(
        default=60.0, metadata=doc("Seconds before the first retry; doubled each time.")
    )
    retry_max: float = field(
        default=3600.0, metadata=doc("Longest wait between two tries of a message.")
    )
    poll_interval: float = field(
        default=1.0, metadata=doc("Seconds between looks at the queue when nothing woke it.")
    )
    timeout: float = field(
        default=60.0, metadata=doc("Seconds to wait for a remote SMTP server's reply.")
    )
    concurrency: int = field(
        default=8, metadata=doc("Messages delivered at the same time, in each delivery process.")
    )
    processes: int = field(
        default=1,
        metadata=doc(
            "Delivery worker processes with [serve] workers > 0 (DKIM signing is CPU work: "
            "up to one per core spreads it). Each claims its own messages; after a crash, "
            "the process started in its place takes back only its own."
        ),
    )
    connections_per_domain: int = field(
        default=2, metadata=doc("Connections at once to one destination domain (direct).")
    )


@dataclass(frozen=True)
class DnsChecksConfig:
    """Live checks of the sending domains' SPF, DKIM and DMARC and the dropbox's MX."""

    interval: float = field(
        default=6 * 3600.0, metadata=doc("Seconds between automatic checks of each domain.")
    )
    alert_after: int = field(
        default=3,
        metadata=doc(
            "Failed checks in a row before a domain counts as broken (banner, "
            "domain.dns_failed webhook): DNS changes take a while to spread."
        ),
    )
    dmarc_reports_local: str = field(
        default="dmarc-reports",
        metadata=doc(
            "Local part of the dropbox domain's address that the suggested DMARC record "
            "sends aggregate reports to (rua)."
        ),
    )
