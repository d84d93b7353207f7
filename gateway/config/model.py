"""The whole configuration: one frozen section per table, where it came from."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.core_sections import (
    AddressesConfig,
    ClusterConfig,
    ContactsConfig,
    DatabaseConfig,
    DnsConfig,
    HousekeepingConfig,
    LogConfig,
    PathsConfig,
    SecurityConfig,
    ServeConfig,
    TlsConfig,
    WebConfig,
    WebhooksConfig,
)
from gateway.config.inbound_sections import (
    CalendarConfig,
    DropboxConfig,
    ImapConfig,
    OAuth2Config,
    PipelineConfig,
)
from gateway.config.outbound_sections import DnsChecksConfig, OutboundConfig, SubmissionConfig
from gateway.errors import ConfigError


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    addresses: AddressesConfig = field(default_factory=AddressesConfig)
    contacts: ContactsConfig = field(default_factory=ContactsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    dropbox: DropboxConfig = field(default_factory=DropboxConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    oauth2: OAuth2Config = field(default_factory=OAuth2Config)
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    dns_checks: DnsChecksConfig = field(default_factory=DnsChecksConfig)
    web: WebConfig = field(default_factory=WebConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    housekeeping: HousekeepingConfig = field(default_factory=HousekeepingConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # Where relative paths are resolved from (the config file's directory).
    base_dir: Path = Path(".")
    source: str = "defaults"
    # Keys set by environment variables: ("table.key", "environment variable NAME").
    overrides: tuple[tuple[str, str], ...] = ()

    def origin(self, key: str) -> str:
        """Where the value of `key` ("table.key") came from: the environment variable
        that set it, else the file (or "defaults")."""
        return dict(self.overrides).get(key, self.source)

    def error(self, key: str, reason: str) -> ConfigError:
        """The error for a bad value of `key`, naming where that value came from."""
        return ConfigError(key, self.origin(key), reason)

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


SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name]
    for f in dataclasses.fields(Config)
    if f.name not in ("base_dir", "source", "overrides")
}
