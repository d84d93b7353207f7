"""Typed configuration: config.toml overlaid by GATEWAY_<TABLE>__<KEY> variables.

`load_config()` (loading) reads the TOML file (if any), applies environment
overrides, checks every value (checks) and returns a frozen `Config` (model). Any
unknown table, unknown key or bad value raises `ConfigError` naming the key and
where its value came from: the file, or the environment variable that set it.
The sections' schemas (core_sections, inbound_sections, outbound_sections) are
also the source of config.example.toml (example.render_example()).
"""

from __future__ import annotations

from gateway.config.checks import host_port
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
from gateway.config.example import render_example
from gateway.config.inbound_sections import (
    CalendarConfig,
    DropboxConfig,
    ImapConfig,
    OAuth2Config,
    PipelineConfig,
)
from gateway.config.loading import DEFAULT_CONFIG_FILE, ENV_PREFIX, load_config
from gateway.config.model import SECTIONS, Config
from gateway.config.outbound_sections import DnsChecksConfig, OutboundConfig, SubmissionConfig

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "SECTIONS",
    "AddressesConfig",
    "CalendarConfig",
    "ClusterConfig",
    "Config",
    "ContactsConfig",
    "DatabaseConfig",
    "DnsChecksConfig",
    "DnsConfig",
    "DropboxConfig",
    "HousekeepingConfig",
    "ImapConfig",
    "LogConfig",
    "OAuth2Config",
    "OutboundConfig",
    "PathsConfig",
    "PipelineConfig",
    "SecurityConfig",
    "ServeConfig",
    "SubmissionConfig",
    "TlsConfig",
    "WebConfig",
    "WebhooksConfig",
    "host_port",
    "load_config",
    "render_example",
]
