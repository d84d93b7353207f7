"""Typed configuration: config.toml overlaid by GATEWAY_<TABLE>__<KEY> variables.

`load_config()` reads the TOML file (if any), applies environment overrides,
validates every value and returns a frozen `Config`.  Any unknown table, unknown
key or bad value raises `ConfigError` naming the key and where it came from.
The schema below is also the source of config.example.toml
(`render_example()`), so the example documents every key with its default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.registry import ROLE_NAMES

ENV_PREFIX = "GATEWAY_"
DEFAULT_CONFIG_FILE = "config.toml"


def _doc(text: str, choices: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"doc": text, "choices": choices}


@dataclass(frozen=True)
class PathsConfig:
    """Where the gateway keeps its files."""

    var_dir: str = field(
        default="var",
        metadata=_doc(
            "Directory for the SQLite database, the secret key file and TLS material. "
            "Relative paths are taken from the directory of the config file."
        ),
    )


@dataclass(frozen=True)
class DatabaseConfig:
    """The one database that holds all state."""

    url: str = field(
        default="",
        metadata=_doc(
            "SQLAlchemy URL. Empty: SQLite at <var_dir>/gateway.db (WAL, synchronous=FULL). "
            'PostgreSQL: "postgresql+psycopg://user@host:5432/dbname".'
        ),
    )


@dataclass(frozen=True)
class AddressesConfig:
    """How addresses are compared."""

    local_part_case: str = field(
        default="lower",
        metadata=_doc(
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
        metadata=_doc("At most this many contacts are auto-created from one message."),
    )
    blocked_domains: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
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
        metadata=_doc(
            "Glob patterns of local parts (automated senders) never auto-created as contacts."
        ),
    )


@dataclass(frozen=True)
class TlsConfig:
    """The certificate the SMTP listeners offer with STARTTLS."""

    cert_file: str = field(
        default="",
        metadata=_doc(
            "PEM certificate chain. Empty: <var_dir>/tls/cert.pem, a self-signed pair "
            "that `gateway init` makes for development."
        ),
    )
    key_file: str = field(
        default="",
        metadata=_doc("PEM private key. Empty: <var_dir>/tls/key.pem."),
    )


@dataclass(frozen=True)
class DnsConfig:
    """The resolver used for SPF, DKIM and DMARC (and later MX and SRV) look-ups."""

    nameservers: tuple[str, ...] = field(
        default=(),
        metadata=_doc('Nameservers as "host" or "host:port". Empty: the system resolver.'),
    )
    timeout: float = field(
        default=5.0,
        metadata=_doc("Seconds before a DNS look-up counts as a temporary error."),
    )


@dataclass(frozen=True)
class DropboxConfig:
    """The BCC dropbox: its addresses and the SMTP server that receives them."""

    listen: str = field(
        default="127.0.0.1:2525",
        metadata=_doc('Address and port of the dropbox SMTP server (production: "0.0.0.0:25").'),
    )
    hostname: str = field(
        default="localhost",
        metadata=_doc("Name the server gives in its greeting and EHLO reply."),
    )
    policy: str = field(
        default="verify",
        metadata=_doc(
            '"verify": the From or envelope sender must be an address of a user of the '
            "account that owns the dropbox address, and pass SPF or DKIM aligned with it; "
            'else 550 5.7.1. "quarantine": accept failures but hold them until the user '
            'approves. "trust-network": clients in trusted_networks skip the checks.',
            ("verify", "quarantine", "trust-network"),
        ),
    )
    trusted_networks: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            'Networks that skip sender checks under "trust-network", e.g. "127.0.0.0/8".'
        ),
    )
    max_message_size: int = field(
        default=25 * 1024 * 1024,
        metadata=_doc("Largest message accepted, in bytes (advertised as SIZE)."),
    )
    max_recipients: int = field(
        default=100,
        metadata=_doc("Recipients accepted per message; more get 452 4.5.3."),
    )
    max_errors: int = field(
        default=20,
        metadata=_doc("Error replies (bad commands, unknown recipients) before 421 and hang-up."),
    )
    timeout: float = field(
        default=300.0,
        metadata=_doc("Seconds a client may stay silent before 421 and hang-up."),
    )
    max_session_time: float = field(
        default=600.0,
        metadata=_doc(
            "Seconds one connection may last in all, however busy (a client dripping bytes "
            "never reaches the idle timeout); then 421 and hang-up."
        ),
    )
    max_connections_per_ip: int = field(
        default=20,
        metadata=_doc("Concurrent connections from one IP; more get 421 4.7.0."),
    )
    connections_per_minute_per_ip: int = field(
        default=300,
        metadata=_doc("New connections per minute from one IP; more get 421 4.7.0."),
    )
    proxy_protocol: bool = field(
        default=False,
        metadata=_doc(
            "Expect a PROXY protocol (v1 or v2) header first, as behind a TCP load balancer."
        ),
    )
    domain: str = field(
        default="dropbox.localhost",
        metadata=_doc("Domain of every dropbox address; point its MX at the gateway."),
    )
    address_format: str = field(
        default="{token}",
        metadata=_doc(
            'Local part of a dropbox address; must contain "{token}" (e.g. "bcc-{token}").'
        ),
    )


@dataclass(frozen=True)
class PipelineConfig:
    """The worker that finishes stored messages (parse, match, thread, attach)."""

    poll_interval: float = field(
        default=2.0,
        metadata=_doc("Seconds between looks for unfinished messages."),
    )
    batch_size: int = field(
        default=100,
        metadata=_doc("Messages finished per database transaction."),
    )
    gather_time: float = field(
        default=0.02,
        metadata=_doc(
            "Seconds the pipeline waits after being told of a new message, so that "
            "messages arriving together are finished in one transaction (less CPU "
            "under load; a message is attached that much later). 0: at once."
        ),
    )


@dataclass(frozen=True)
class SecurityConfig:
    """Where hosts that users type in (IMAP/SMTP servers, later webhook URLs) may point."""

    allowed_private_networks: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "Networks that user-typed hosts may resolve to besides the public internet "
            '(e.g. "127.0.0.0/8" for a local test server). Empty: loopback, private, '
            "link-local, metadata and other special addresses are refused."
        ),
    )


@dataclass(frozen=True)
class ImapConfig:
    """IMAP sync of connected mailboxes (the `imap` role and `gateway mailbox`)."""

    window_days: int = field(
        default=90,
        metadata=_doc("The initial sync reads mail of this many days back, newest first."),
    )
    batch_size: int = field(
        default=2000,
        metadata=_doc(
            "Messages per FETCH of headers (and per checkpoint). On a first scan of "
            "Dovecot, 2000 took half the time of 500."
        ),
    )
    poll_interval: float = field(
        default=300.0,
        metadata=_doc("Seconds between looks for new mail in folders without IDLE (and in Sent)."),
    )
    idle_refresh: float = field(
        default=25 * 60.0,
        metadata=_doc("Seconds after which IDLE is re-issued (RFC 2177: before 29 minutes)."),
    )
    timeout: float = field(
        default=60.0,
        metadata=_doc("Seconds to wait for an IMAP server to connect or answer."),
    )
    max_connections: int = field(
        default=500,
        metadata=_doc(
            "Mailboxes one `imap` role keeps in sync at once: each holds one connection "
            "and one thread. Mailboxes past this wait (and a warning is logged)."
        ),
    )
    backoff_max: float = field(
        default=600.0,
        metadata=_doc("Longest wait, in seconds, between reconnects after network errors."),
    )
    max_message_size: int = field(
        default=50 * 1024 * 1024,
        metadata=_doc(
            "Largest server response read at once, in bytes (a message, a literal); "
            "a bigger one fails that mailbox's sync, never the process."
        ),
    )
    audit_interval: float = field(
        default=24 * 3600.0,
        metadata=_doc(
            "Seconds between completeness audits of each mailbox (the server's census of "
            "the window against what the gateway stored; what is missing is fetched). 0: never."
        ),
    )
    tls_verify: bool = field(
        default=True,
        metadata=_doc(
            "Verify IMAP/SMTP server certificates. A mailbox may still be added with "
            "--tls-no-verify for a self-signed server."
        ),
    )
    compress: bool = field(
        default=True,
        metadata=_doc(
            "Compress IMAP sessions with servers that offer COMPRESS=DEFLATE (RFC 4978: "
            "Gmail, Dovecot, Cyrus; not Microsoft): a few times fewer bytes downloaded "
            "for a little CPU."
        ),
    )


@dataclass(frozen=True)
class OAuth2Config:
    """OAuth2 apps that mailboxes of Google and Microsoft sign in with (XOAUTH2)."""

    google_client_id: str = field(default="", metadata=_doc("Client id of your Google app."))
    google_client_secret: str = field(
        default="", metadata=_doc("Its client secret (or GATEWAY_OAUTH2__GOOGLE_CLIENT_SECRET).")
    )
    google_token_url: str = field(
        default="https://oauth2.googleapis.com/token",
        metadata=_doc("Google's token endpoint (where access tokens are refreshed)."),
    )
    microsoft_client_id: str = field(
        default="", metadata=_doc("Application (client) id of your Microsoft Entra app.")
    )
    microsoft_client_secret: str = field(default="", metadata=_doc("Its client secret."))
    microsoft_tenant: str = field(
        default="common",
        metadata=_doc(
            '"common" (work, school and personal accounts), "organizations", "consumers" '
            "or a tenant id; Outlook.com accounts need common or consumers."
        ),
    )
    microsoft_token_url: str = field(
        default="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        metadata=_doc("Microsoft's token endpoint; {tenant} is replaced."),
    )
    timeout: float = field(default=20.0, metadata=_doc("Seconds to wait for a token endpoint."))


@dataclass(frozen=True)
class SubmissionConfig:
    """The submission role: the SMTP server the CRM sends mail through (SMTP AUTH)."""

    listen: str = field(
        default="127.0.0.1:2587",
        metadata=_doc('Address and port with STARTTLS (production: "0.0.0.0:587").'),
    )
    tls_listen: str = field(
        default="",
        metadata=_doc('Address and port with implicit TLS ("0.0.0.0:465"); empty: none.'),
    )
    hostname: str = field(
        default="localhost",
        metadata=_doc("Name the server gives in its greeting and EHLO reply."),
    )
    max_message_size: int = field(
        default=25 * 1024 * 1024,
        metadata=_doc("Largest message accepted, in bytes (advertised with SIZE)."),
    )
    max_recipients: int = field(
        default=100, metadata=_doc("Recipients per message; more get 452 4.5.3.")
    )
    max_errors: int = field(
        default=10, metadata=_doc("Error replies before the connection is closed (421).")
    )
    timeout: float = field(
        default=300.0, metadata=_doc("Seconds a client may stay silent (RFC 5321: 5 min).")
    )
    auth_failures: int = field(
        default=5,
        metadata=_doc(
            "Failed AUTH attempts allowed per client IP and per user within "
            "auth_failure_window; past them AUTH is refused (454 4.7.0) until the window passes."
        ),
    )
    auth_failure_window: float = field(
        default=600.0, metadata=_doc("Seconds over which failed AUTH attempts are counted.")
    )
    auth_failure_delay: float = field(
        default=1.0, metadata=_doc("Seconds before a failed AUTH is answered (slows guessing).")
    )
    max_messages_per_hour: int = field(
        default=1000,
        metadata=_doc(
            "Messages one user may queue in any hour (SMTP and API together); past it MAIL "
            "gets 451 4.7.1. 0: no limit."
        ),
    )


@dataclass(frozen=True)
class OutboundConfig:
    """The delivery role: how queued mail leaves."""

    default_route: str = field(
        default="direct",
        metadata=_doc(
            "Route of users who chose none and have no connected mailbox to send with: "
            "direct (the recipients' MX hosts) or relay (relay_url). Per user: "
            "`gateway user route EMAIL mailbox|direct|relay`.",
            ("direct", "relay"),
        ),
    )
    relay_url: str = field(
        default="",
        metadata=_doc(
            "The smarthost of the relay route: smtp://[user:password@]host[:port] (STARTTLS "
            "required, 587 by default) or smtps://... (implicit TLS, 465)."
        ),
    )
    relay_tls_verify: bool = field(
        default=True, metadata=_doc("Verify the relay's certificate (off: a self-signed relay).")
    )
    direct_port: int = field(
        default=25,
        metadata=_doc("Port of MX hosts for direct delivery (tests point it elsewhere)."),
    )
    helo_name: str = field(
        default="localhost",
        metadata=_doc("Name given in EHLO; for direct delivery, the sending host's DNS name."),
    )
    max_age: float = field(
        default=5 * 24 * 3600.0,
        metadata=_doc("Seconds a deferred recipient is retried before it bounces (5 days)."),
    )
    retry_base: float = field(
        default=60.0, metadata=_doc("Seconds before the first retry; doubled each time.")
    )
    retry_max: float = field(
        default=3600.0, metadata=_doc("Longest wait between two tries of a message.")
    )
    poll_interval: float = field(
        default=1.0, metadata=_doc("Seconds between looks at the queue when nothing woke it.")
    )
    timeout: float = field(
        default=60.0, metadata=_doc("Seconds to wait for a remote SMTP server's reply.")
    )
    concurrency: int = field(
        default=8, metadata=_doc("Messages delivered at the same time, in each delivery process.")
    )
    processes: int = field(
        default=1,
        metadata=_doc(
            "Delivery worker processes with [serve] workers > 0 (DKIM signing is CPU work: "
            "up to one per core spreads it). Each claims its own messages; after a crash, "
            "the process started in its place takes back only its own."
        ),
    )
    connections_per_domain: int = field(
        default=2, metadata=_doc("Connections at once to one destination domain (direct).")
    )


@dataclass(frozen=True)
class WebConfig:
    """The web role: the HTTP server of the admin pages, the REST API and /metrics."""

    listen: str = field(
        default="127.0.0.1:8080",
        metadata=_doc('Address and port of the HTTP server (behind a TLS proxy: "0.0.0.0:8080").'),
    )
    metrics_token: str = field(
        default="",
        metadata=_doc(
            "Bearer token that GET /metrics requires (Prometheus: authorization.credentials). "
            "Empty: /metrics is open to whoever reaches the listen address."
        ),
    )


@dataclass(frozen=True)
class ServeConfig:
    """What `gateway serve` runs."""

    roles: tuple[str, ...] = field(
        default=("dropbox", "pipeline", "imap", "web"),
        metadata=_doc(
            'Roles started by `gateway serve`: "dropbox" (the BCC dropbox SMTP server), '
            '"pipeline" (finishes every stored message, including those interrupted by a '
            'crash), "imap" (syncs every active connected mailbox), "web" (the HTTP '
            'server: /metrics) and "submission" (SMTP AUTH for the CRM: queues mail; its '
            "delivery comes with a later release, so it is not started by default)."
        ),
    )
    workers: int = field(
        default=1,
        metadata=_doc(
            "SMTP worker processes sharing the listening sockets; the pipeline then runs in "
            "a background process of its own, and a supervisor restarts any that dies. "
            "0 runs every role in the one process of `gateway serve`."
        ),
    )


@dataclass(frozen=True)
class LogConfig:
    """Logging."""

    level: str = field(
        default="info",
        metadata=_doc("Log level.", ("debug", "info", "warning", "error")),
    )


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = PathsConfig()
    database: DatabaseConfig = DatabaseConfig()
    addresses: AddressesConfig = AddressesConfig()
    contacts: ContactsConfig = ContactsConfig()
    tls: TlsConfig = TlsConfig()
    dns: DnsConfig = DnsConfig()
    dropbox: DropboxConfig = DropboxConfig()
    pipeline: PipelineConfig = PipelineConfig()
    security: SecurityConfig = SecurityConfig()
    imap: ImapConfig = ImapConfig()
    oauth2: OAuth2Config = OAuth2Config()
    submission: SubmissionConfig = SubmissionConfig()
    outbound: OutboundConfig = OutboundConfig()
    web: WebConfig = WebConfig()
    serve: ServeConfig = ServeConfig()
    log: LogConfig = LogConfig()
    # Where relative paths are resolved from (the config file's directory).
    base_dir: Path = Path(".")
    source: str = "defaults"

    @property
    def var_dir(self) -> Path:
        return (self.base_dir / self.paths.var_dir).resolve()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.var_dir / 'gateway.db'}"

    @property
    def secret_key_file(self) -> Path:
        return self.var_dir / "secret.key"

    @property
    def tls_cert_file(self) -> Path:
        return (
            self.base_dir / self.tls.cert_file
            if self.tls.cert_file
            else self.var_dir / "tls" / "cert.pem"
        )

    @property
    def tls_key_file(self) -> Path:
        return (
            self.base_dir / self.tls.key_file
            if self.tls.key_file
            else self.var_dir / "tls" / "key.pem"
        )


KNOWN_ROLES = ROLE_NAMES
_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name not in ("base_dir", "source")
}


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load config from `path` (default: $GATEWAY_CONFIG or ./config.toml if present)."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("GATEWAY_CONFIG") or None
        explicit = path is not None
        path = path or DEFAULT_CONFIG_FILE
    else:
        explicit = True
    file = Path(path)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("(file)", str(file), f"not valid TOML: {exc}") from exc
        source = str(file)
    elif explicit:
        raise ConfigError("(file)", str(file), "file not found")
    else:
        source = "defaults"
    base_dir = file.resolve().parent if file.exists() else Path.cwd()
    sections: dict[str, Any] = {}
    for table, values in data.items():
        if table not in _SECTIONS:
            raise ConfigError(table, source, f"unknown table [{table}]")
        if not isinstance(values, dict):
            raise ConfigError(table, source, f"[{table}] must be a table")
        sections[table] = _build_section(table, _SECTIONS[table], values, source)
    for table, cls in _SECTIONS.items():
        overrides = _env_overrides(table, cls, environ)
        if overrides:
            current = sections.get(table, cls())
            sections[table] = dataclasses.replace(current, **overrides)
    config = Config(**sections, base_dir=base_dir, source=source)
    _check(config)
    return config


def _build_section(table: str, cls: type, values: dict[str, Any], source: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{table}.{key}", source, "unknown key")
        kwargs[key] = _coerce(f"{table}.{key}", source, hints[key], value)
    return cls(**kwargs)


def _env_overrides(table: str, cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    prefix = f"{ENV_PREFIX}{table.upper()}__"
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(prefix):
            continue
        key = name[len(prefix) :].lower()
        where = f"environment variable {name}"
        if key not in hints:
            raise ConfigError(f"{table}.{key}", where, "unknown key")
        out[key] = _coerce(f"{table}.{key}", where, hints[key], _env_value(hints[key], raw))
    # A variable naming an unknown table is an error too, not silently ignored.
    for name in environ:
        if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]:
            t = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if t not in _SECTIONS:
                raise ConfigError(t, f"environment variable {name}", f"unknown table [{t}]")
    return out


def _env_value(hint: Any, raw: str) -> Any:
    if typing.get_origin(hint) is tuple:
        text = raw.strip()
        if text.startswith("["):
            try:
                return tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                return raw
        return [part.strip() for part in text.split(",") if part.strip()]
    if hint is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def _coerce(key: str, source: str, hint: Any, value: Any) -> Any:
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, source, "must be a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, source, "must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, source, "must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, source, "must be a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, source, "must be a string")
        return value
    raise ConfigError(key, source, f"unsupported type {hint}")  # pragma: no cover


def _check(config: Config) -> None:
    src = config.source
    for table, cls in _SECTIONS.items():
        section = getattr(config, table)
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices") or ()
            if choices and getattr(section, f.name) not in choices:
                raise ConfigError(f"{table}.{f.name}", src, f"must be one of {', '.join(choices)}")
    if config.contacts.auto_create_max_per_message < 0:
        raise ConfigError("contacts.auto_create_max_per_message", src, "must be 0 or more")
    if "{token}" not in config.dropbox.address_format:
        raise ConfigError("dropbox.address_format", src, 'must contain "{token}"')
    if not config.dropbox.domain or "@" in config.dropbox.domain:
        raise ConfigError("dropbox.domain", src, "must be a domain name")
    if config.pipeline.poll_interval <= 0:
        raise ConfigError("pipeline.poll_interval", src, "must be greater than 0")
    if not 0 <= config.pipeline.gather_time <= 10:
        raise ConfigError("pipeline.gather_time", src, "must be from 0 to 10 seconds")
    if config.pipeline.batch_size < 1:
        raise ConfigError("pipeline.batch_size", src, "must be at least 1")
    for role in config.serve.roles:
        if role not in KNOWN_ROLES:
            raise ConfigError("serve.roles", src, f"unknown role {role!r} (known: {KNOWN_ROLES})")
    if not 0 <= config.serve.workers <= 64:
        raise ConfigError("serve.workers", src, "must be from 0 to 64")
    _check_dropbox(config)
    _check_imap(config)
    _host_port(config.web.listen, None, "web.listen", src)
    _check_submission(config)
    _check_outbound(config)
    for server in config.dns.nameservers:
        _host_port(server, 53, "dns.nameservers", src)
    url = config.database.url
    if url and not (url.startswith(("sqlite", "postgresql"))):
        raise ConfigError("database.url", src, "must be a sqlite:// or postgresql+psycopg:// URL")


def _check_dropbox(config: Config) -> None:
    src, dropbox = config.source, config.dropbox
    _host_port(dropbox.listen, None, "dropbox.listen", src)
    for network in dropbox.trusted_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError("dropbox.trusted_networks", src, f"{network!r}: {exc}") from exc
    for key in (
        "max_message_size",
        "max_recipients",
        "max_errors",
        "max_connections_per_ip",
        "connections_per_minute_per_ip",
    ):
        if getattr(dropbox, key) < 1:
            raise ConfigError(f"dropbox.{key}", src, "must be at least 1")
    for key in ("timeout", "max_session_time"):
        if getattr(dropbox, key) <= 0:
            raise ConfigError(f"dropbox.{key}", src, "must be greater than 0")


def _check_submission(config: Config) -> None:
    src, submission = config.source, config.submission
    _host_port(submission.listen, None, "submission.listen", src)
    if submission.tls_listen:
        _host_port(submission.tls_listen, None, "submission.tls_listen", src)
    for key in ("max_message_size", "max_recipients", "max_errors", "auth_failures"):
        if getattr(submission, key) < 1:
            raise ConfigError(f"submission.{key}", src, "must be at least 1")
    for key in ("timeout", "auth_failure_window"):
        if getattr(submission, key) <= 0:
            raise ConfigError(f"submission.{key}", src, "must be greater than 0")
    if submission.max_messages_per_hour < 0:
        raise ConfigError("submission.max_messages_per_hour", src, "must be 0 (no limit) or more")
    if not 0 <= submission.auth_failure_delay <= 30:
        raise ConfigError("submission.auth_failure_delay", src, "must be from 0 to 30 seconds")


def _check_outbound(config: Config) -> None:
    src, outbound = config.source, config.outbound
    if outbound.relay_url:
        from urllib.parse import urlsplit

        url = urlsplit(outbound.relay_url)
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise ConfigError(
                "outbound.relay_url", src, "must be smtp://host[:port] or smtps://..."
            )
    if outbound.default_route == "relay" and not outbound.relay_url:
        raise ConfigError("outbound.default_route", src, "relay needs [outbound] relay_url")
    if not 0 < outbound.direct_port <= 65535:
        raise ConfigError("outbound.direct_port", src, "must be a port number")
    for key in ("max_age", "retry_base", "retry_max", "poll_interval", "timeout"):
        if getattr(outbound, key) <= 0:
            raise ConfigError(f"outbound.{key}", src, "must be greater than 0")
    for key in ("concurrency", "connections_per_domain"):
        if getattr(outbound, key) < 1:
            raise ConfigError(f"outbound.{key}", src, "must be at least 1")
    if not 1 <= outbound.processes <= 16:
        raise ConfigError("outbound.processes", src, "must be from 1 to 16")


def _check_imap(config: Config) -> None:
    src, imap = config.source, config.imap
    for network in config.security.allowed_private_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(
                "security.allowed_private_networks", src, f"{network!r}: {exc}"
            ) from exc
    for key in ("window_days", "batch_size", "max_connections", "max_message_size"):
        if getattr(imap, key) < 1:
            raise ConfigError(f"imap.{key}", src, "must be at least 1")
    if imap.batch_size > 5000:
        raise ConfigError("imap.batch_size", src, "must be at most 5000")
    if imap.audit_interval < 0:
        raise ConfigError("imap.audit_interval", src, "must be 0 (never) or more")
    for key in ("poll_interval", "timeout", "backoff_max"):
        if getattr(imap, key) <= 0:
            raise ConfigError(f"imap.{key}", src, "must be greater than 0")
    if not 0 < imap.idle_refresh < 29 * 60:
        raise ConfigError("imap.idle_refresh", src, "must be under 1740 seconds (29 minutes)")


def _host_port(value: str, default_port: int | None, key: str, source: str) -> tuple[str, int]:
    """Split "host:port" ("[::1]:25" for IPv6); the port may be left out if defaulted."""
    host, port = value, default_port
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        port = int(text) if text.isdigit() else None
    if not host or port is None or not 0 <= port <= 65535:
        raise ConfigError(key, source, f'{value!r} is not "host:port"')
    return host, port


def host_port(value: str, default_port: int | None = None) -> tuple[str, int]:
    return _host_port(value, default_port, "(address)", "(value)")


def render_example() -> str:
    """The text of config.example.toml: every key, its default and what it does."""
    lines = [
        "# CRM Email Gateway configuration.",
        "# Every key is shown with its default. Any key can be overridden by an",
        "# environment variable GATEWAY_<TABLE>__<KEY>, e.g. GATEWAY_DATABASE__URL.",
        "# Lists in environment variables: TOML syntax or comma-separated.",
    ]
    for table, cls in _SECTIONS.items():
        lines += ["", f"[{table}]"]
        doc = (cls.__doc__ or "").strip()
        if doc:
            lines.append(f"# {doc}")
        default = cls()
        for f in dataclasses.fields(cls):
            for chunk in _wrap(f.metadata.get("doc", "")):
                lines.append(f"# {chunk}")
            lines.append(f"{f.name} = {_toml_value(getattr(default, f.name))}")
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int = 76) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value))  # pragma: no cover
