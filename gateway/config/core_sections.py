"""The sections every part of the gateway reads: paths, database, addresses,
contacts, TLS, DNS, security, web, housekeeping, serve, cluster and log."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config.doc import doc


@dataclass(frozen=True)
class PathsConfig:
    """Where the gateway keeps its files."""

    var_dir: str = field(
        default="var",
        metadata=doc(
            "Directory for the SQLite database, the secret key file and TLS material. "
            "Relative paths are taken from the directory of the config file."
        ),
    )


@dataclass(frozen=True)
class DatabaseConfig:
    """The one database that holds all state."""

    url: str = field(
        default="",
        metadata=doc(
            "SQLAlchemy URL. Empty: SQLite at <var_dir>/gateway.db (WAL, synchronous=FULL). "
            'PostgreSQL: "postgresql+psycopg://user@host:5432/dbname".'
        ),
    )


@dataclass(frozen=True)
class AddressesConfig:
    """How addresses are compared."""

    local_part_case: str = field(
        default="lower",
        metadata=doc(
            'How local parts compare: "lower" ignores case (what mail providers do), '
            '"exact" keeps them case-sensitive as RFC 5321 allows. Domains always ignore case.',
            ("lower", "exact"),
        ),
    )


@dataclass(frozen=True)
class ContactsConfig:
    """Automatic creation of contacts from mail (switched on per account)."""

    auto_create_max_per_message: int = field(
        default=20,
        metadata=doc("At most this many contacts are auto-created from one message."),
    )
    blocked_domains: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Domains never auto-created as contacts, for every account (accounts add their own)."
        ),
    )
    excluded_local_parts: tuple[str, ...] = field(
        default=(
            "noreply*",
            "no-reply*",
            "no_reply*",
            "donotreply*",
            "do-not-reply*",
            "do_not_reply*",
            "mailer-daemon",
            "postmaster",
            "bounce",
            "bounces",
            "bounce-*",
            "bounces-*",
            "bounces+*",
            "abuse",
        ),
        metadata=doc(
            "Glob patterns of local parts (automated senders) never auto-created as contacts."
        ),
    )


@dataclass(frozen=True)
class TlsConfig:
    """The certificate the SMTP listeners offer with STARTTLS."""

    cert_file: str = field(
        default="",
        metadata=doc(
            "PEM certificate chain. Empty: <var_dir>/tls/cert.pem, a self-signed pair "
            "that `gateway init` makes for development."
        ),
    )
    key_file: str = field(
        default="",
        metadata=doc("PEM private key. Empty: <var_dir>/tls/key.pem."),
    )


@dataclass(frozen=True)
class DnsConfig:
    """The resolver used for SPF, DKIM and DMARC (and later MX and SRV) look-ups."""

    nameservers: tuple[str, ...] = field(
        default=(),
        metadata=doc('Nameservers as "host" or "host:port". Empty: the system resolver.'),
    )
    timeout: float = field(
        default=5.0,
        metadata=doc("Seconds before a DNS look-up counts as a temporary error."),
    )


@dataclass(frozen=True)
class SecurityConfig:
    """Where hosts that users type in (IMAP/SMTP servers, later webhook URLs) may point."""

    allowed_private_networks: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Networks that user-typed hosts may resolve to besides the public internet "
            '(e.g. "127.0.0.0/8" for a local test server). Empty: loopback, private, '
            "link-local, metadata and other special addresses are refused."
        ),
    )


@dataclass(frozen=True)
class WebConfig:
    """The web role: the HTTP server of the admin pages, the REST API and /metrics."""

    listen: str = field(
        default="127.0.0.1:8080",
        metadata=doc('Address and port of the HTTP server (behind a TLS proxy: "0.0.0.0:8080").'),
    )
    metrics_token: str = field(
        default="",
        metadata=doc(
            "Bearer token that GET /metrics requires (Prometheus: authorization.credentials). "
            "Empty: /metrics is open to whoever reaches the listen address."
        ),
    )
    public_url: str = field(
        default="",
        metadata=doc(
            'The address people open, e.g. "https://mail.example.com". When it is https, '
            "session cookies are Secure even if a TLS proxy speaks plain HTTP to us."
        ),
    )
    forwarded_allow_ips: str = field(
        default="127.0.0.1",
        metadata=doc(
            "Comma-separated addresses of proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed (the client's IP for sign-in limits; https)."
        ),
    )
    session_idle_timeout: float = field(
        default=7200.0,
        metadata=doc("Seconds without a request after which a signed-in session ends."),
    )
    session_max_age: float = field(
        default=43200.0,
        metadata=doc("Seconds after sign-in after which a session ends however busy it is."),
    )
    sign_in_window: float = field(
        default=900.0,
        metadata=doc("Seconds over which failed sign-ins are counted."),
    )
    sign_in_failures_per_user: int = field(
        default=5,
        metadata=doc("Failed sign-ins to one address within the window before it is paused."),
    )
    sign_in_failures_per_ip: int = field(
        default=20,
        metadata=doc("Failed sign-ins from one IP address within the window before it is paused."),
    )


@dataclass(frozen=True)
class WebhooksConfig:
    """The webhooks role: events delivered to the CRM's endpoints (Standard Webhooks)."""

    retry_delays: tuple[float, ...] = field(
        default=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0),
        metadata=doc(
            "Seconds before each retry of a delivery that failed (jittered by 10%; a longer "
            "Retry-After of the endpoint wins); after the last, the delivery has failed."
        ),
    )
    timeout: float = field(
        default=10.0, metadata=doc("Seconds an endpoint has to answer a delivery.")
    )
    concurrency: int = field(
        default=16, metadata=doc("Deliveries in flight at once, in each process.")
    )
    per_endpoint: int = field(
        default=8,
        metadata=doc("Deliveries in flight to one endpoint: a slow one holds up only these."),
    )
    poll_interval: float = field(
        default=1.0, metadata=doc("Seconds between looks for new events and due retries.")
    )


@dataclass(frozen=True)
class ClusterConfig:
    """Several gateway nodes on one PostgreSQL: names, and how long claims live."""

    node: str = field(
        default="",
        metadata=doc(
            "This node's name among those sharing the database (empty: the host name). "
            "Its claims carry it with the worker process's name; give each node its own."
        ),
    )
    lease: float = field(
        default=60.0,
        metadata=doc(
            "Seconds a claim (a message being delivered, a webhook being sent) lives "
            "unless its node renews it; nodes renew theirs every third of it. A node that "
            "dies loses its claims this long after its last renewal and others take them "
            "over; a node that stopped renewing (frozen, cut off from the database) sends "
            "nothing more and records nothing of what it held."
        ),
    )


@dataclass(frozen=True)
class HousekeepingConfig:
    """The periodic jobs of the `housekeeping` role: each runs on one node per period."""

    interval: float = field(
        default=3600.0,
        metadata=doc(
            "Seconds between runs of the cleanup (expired sign-in sessions and failures, "
            "idempotency keys, dropbox refusals, leases of removed mailboxes and of nodes "
            "long gone) and of the retention job. Whichever node holds a job's lease runs "
            "it, once per period."
        ),
    )
    keep_days: int = field(
        default=30,
        metadata=doc(
            "Days the finished records are kept: events and their webhook deliveries "
            "once delivered or failed, and the delivery queue's sent, bounced, failed and "
            "cancelled messages (the mail itself stays on the contacts' timelines). 0 "
            "keeps them for ever."
        ),
    )


@dataclass(frozen=True)
class ServeConfig:
    """What `gateway serve` runs."""

    roles: tuple[str, ...] = field(
        default=(
            "dropbox",
            "pipeline",
            "imap",
            "web",
            "submission",
            "delivery",
            "webhooks",
            "dns",
            "calendar",
            "housekeeping",
        ),
        metadata=doc(
            'Roles started by `gateway serve`: "dropbox" (the BCC dropbox SMTP server), '
            '"pipeline" (finishes every stored message, including those interrupted by a '
            'crash), "imap" (syncs every active connected mailbox), "web" (the HTTP '
            'server: /api/v1, /metrics), "submission" (SMTP AUTH for the CRM: queues its '
            'mail), "delivery" (sends queued mail by each user\'s route; with [outbound] '
            'default_route = "hold" nothing leaves until a route is set), "webhooks" '
            '(delivers events to the CRM\'s endpoints), "dns" (re-checks the sending '
            'domains\' DNS records every [dns_checks] interval), "calendar" (syncs the '
            'calendars of connected mailboxes every [calendar] interval) and "housekeeping" '
            "(the periodic cleanup and retention jobs of [housekeeping])."
        ),
    )
    workers: int = field(
        default=1,
        metadata=doc(
            "Worker processes sharing the listening sockets (the dropbox's SMTP and the web "
            "server's HTTP); the pipeline then runs in a background process of its own, and "
            "a supervisor restarts any that dies. "
            "0 runs every role in the one process of `gateway serve`."
        ),
    )


@dataclass(frozen=True)
class LogConfig:
    """Logging."""

    level: str = field(
        default="info",
        metadata=doc("Log level.", ("debug", "info", "warning", "error")),
    )
