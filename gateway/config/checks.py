"""The checks of a loaded configuration that its types alone do not make: choices,
ranges, addresses, networks, URLs. Each error names the key and where its value came
from (the file, or the environment variable that set it)."""

from __future__ import annotations

import dataclasses
import ipaddress

from gateway.config.model import SECTIONS, Config
from gateway.errors import ConfigError
from gateway.registry import ROLE_NAMES


def check(config: Config) -> None:
    for table, cls in SECTIONS.items():
        section = getattr(config, table)
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices") or ()
            if choices and getattr(section, f.name) not in choices:
                raise config.error(f"{table}.{f.name}", f"must be one of {', '.join(choices)}")
    if config.contacts.auto_create_max_per_message < 0:
        raise config.error("contacts.auto_create_max_per_message", "must be 0 or more")
    if "{token}" not in config.dropbox.address_format:
        raise config.error("dropbox.address_format", 'must contain "{token}"')
    if not config.dropbox.domain or "@" in config.dropbox.domain:
        raise config.error("dropbox.domain", "must be a domain name")
    if config.pipeline.poll_interval <= 0:
        raise config.error("pipeline.poll_interval", "must be greater than 0")
    if not 0 <= config.pipeline.gather_time <= 10:
        raise config.error("pipeline.gather_time", "must be from 0 to 10 seconds")
    if config.pipeline.batch_size < 1:
        raise config.error("pipeline.batch_size", "must be at least 1")
    _check_calendar(config)
    if config.cluster.lease < 1:
        raise config.error("cluster.lease", "must be at least 1 second")
    if config.housekeeping.interval < 1:
        raise config.error("housekeeping.interval", "must be at least 1 second")
    if not 0 <= config.housekeeping.keep_days <= 36500:
        raise config.error("housekeeping.keep_days", "must be from 0 (for ever) to 36500")
    for role in config.serve.roles:
        if role not in ROLE_NAMES:
            raise config.error(
                "serve.roles", f"unknown role {role!r} (known: {', '.join(ROLE_NAMES)})"
            )
    if not 0 <= config.serve.workers <= 64:
        raise config.error("serve.workers", "must be from 0 to 64")
    _check_dropbox(config)
    _check_imap(config)
    _host_port(config.web.listen, None, "web.listen", config.origin("web.listen"))
    _check_submission(config)
    _check_outbound(config)
    _check_webhooks(config)
    for server in config.dns.nameservers:
        _host_port(server, 53, "dns.nameservers", config.origin("dns.nameservers"))
    url = config.database.url
    if url and not (url.startswith(("sqlite", "postgresql"))):
        raise config.error("database.url", "must be a sqlite:// or postgresql+psycopg:// URL")


def _check_dropbox(config: Config) -> None:
    dropbox = config.dropbox
    _host_port(dropbox.listen, None, "dropbox.listen", config.origin("dropbox.listen"))
    for network in dropbox.trusted_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise config.error("dropbox.trusted_networks", f"{network!r}: {exc}") from exc
    for key in (
        "max_message_size",
        "max_recipients",
        "max_errors",
        "max_connections_per_ip",
        "connections_per_minute_per_ip",
    ):
        if getattr(dropbox, key) < 1:
            raise config.error(f"dropbox.{key}", "must be at least 1")
    for key in ("timeout", "max_session_time"):
        if getattr(dropbox, key) <= 0:
            raise config.error(f"dropbox.{key}", "must be greater than 0")


def _check_submission(config: Config) -> None:
    submission = config.submission
    _host_port(submission.listen, None, "submission.listen", config.origin("submission.listen"))
    if submission.tls_listen:
        _host_port(
            submission.tls_listen,
            None,
            "submission.tls_listen",
            config.origin("submission.tls_listen"),
        )
    for key in ("max_message_size", "max_recipients", "max_errors", "auth_failures"):
        if getattr(submission, key) < 1:
            raise config.error(f"submission.{key}", "must be at least 1")
    for key in ("timeout", "auth_failure_window"):
        if getattr(submission, key) <= 0:
            raise config.error(f"submission.{key}", "must be greater than 0")
    if submission.max_messages_per_hour < 0:
        raise config.error("submission.max_messages_per_hour", "must be 0 (no limit) or more")
    if not 0 <= submission.auth_failure_delay <= 30:
        raise config.error("submission.auth_failure_delay", "must be from 0 to 30 seconds")


def _check_outbound(config: Config) -> None:
    outbound = config.outbound
    if outbound.relay_url:
        from urllib.parse import urlsplit

        url = urlsplit(outbound.relay_url)
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise config.error("outbound.relay_url", "must be smtp://host[:port] or smtps://...")
    if outbound.default_route == "relay" and not outbound.relay_url:
        raise config.error("outbound.default_route", "relay needs [outbound] relay_url")
    if not 0 < outbound.direct_port <= 65535:
        raise config.error("outbound.direct_port", "must be a port number")
    for key in ("max_age", "retry_base", "retry_max", "poll_interval", "timeout"):
        if getattr(outbound, key) <= 0:
            raise config.error(f"outbound.{key}", "must be greater than 0")
    for key in ("concurrency", "connections_per_domain"):
        if getattr(outbound, key) < 1:
            raise config.error(f"outbound.{key}", "must be at least 1")
    if not 1 <= outbound.processes <= 16:
        raise config.error("outbound.processes", "must be from 1 to 16")


def _check_webhooks(config: Config) -> None:
    webhooks = config.webhooks
    if not webhooks.retry_delays or any(d <= 0 for d in webhooks.retry_delays):
        raise config.error("webhooks.retry_delays", "must be one or more numbers over 0")
    for key in ("timeout", "poll_interval"):
        if getattr(webhooks, key) <= 0:
            raise config.error(f"webhooks.{key}", "must be greater than 0")
    for key in ("concurrency", "per_endpoint"):
        if getattr(webhooks, key) < 1:
            raise config.error(f"webhooks.{key}", "must be at least 1")


def _check_imap(config: Config) -> None:
    imap = config.imap
    for network in config.security.allowed_private_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise config.error("security.allowed_private_networks", f"{network!r}: {exc}") from exc
    for key in ("window_days", "batch_size", "max_connections", "max_message_size"):
        if getattr(imap, key) < 1:
            raise config.error(f"imap.{key}", "must be at least 1")
    if imap.batch_size > 5000:
        raise config.error("imap.batch_size", "must be at most 5000")
    if imap.audit_interval < 0:
        raise config.error("imap.audit_interval", "must be 0 (never) or more")
    for key in ("poll_interval", "timeout", "backoff_max"):
        if getattr(imap, key) <= 0:
            raise config.error(f"imap.{key}", "must be greater than 0")
    if not 0 < imap.idle_refresh < 29 * 60:
        raise config.error("imap.idle_refresh", "must be under 1740 seconds (29 minutes)")


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


def _check_calendar(config: Config) -> None:
    calendar = config.calendar
    if calendar.interval < 10:
        raise config.error("calendar.interval", "must be at least 10 seconds")
    for key in ("days_back", "days_ahead"):
        if not 0 <= getattr(calendar, key) <= 3650:
            raise config.error(f"calendar.{key}", "must be from 0 to 3650 days")
    if not 1 <= calendar.page_days <= 3650:
        raise config.error("calendar.page_days", "must be from 1 to 3650 days")
    if not 1 <= calendar.graph_page_size <= 1000:
        raise config.error("calendar.graph_page_size", "must be from 1 to 1000")
    if not calendar.graph_url.startswith(("https://", "http://")):
        raise config.error("calendar.graph_url", "must be an http(s) URL")
