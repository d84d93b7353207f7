"""Mail provider presets (gateway/data/providers.toml) and finding a domain's servers.

`preset(key)` gives a provider's servers and quirks. `discover(email, resolver)`
finds the servers of an address: its domain's own provider, else RFC 6186 SRV
records (_imaps/_imap, _submissions/_submission), else the provider that its MX
hosts belong to; None when nothing is known (then the user must say).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.addresses import domain_of
from gateway.errors import InputError
from gateway.resolver import DnsTempError, Resolver

DATA = Path(__file__).parent / "data" / "providers.toml"
SECURITIES = ("tls", "starttls", "none")


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    security: str  # tls | starttls | none


@dataclass(frozen=True)
class Preset:
    key: str
    name: str
    imap: Server | None
    smtp: Server | None
    auth: tuple[str, ...]
    domains: tuple[str, ...] = ()
    mx: tuple[str, ...] = ()
    app_password_help: str = ""
    two_factor_hint: str = ""
    max_connections: int = 10
    server_saves_sent: bool = False
    idle: bool = True
    calendar: str = ""  # caldav | graph | "" (discover: RFC 6764)
    caldav_url: str = ""  # {email} stands for the address
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def password_advice(self) -> str:
        """What to add to "the password was refused": the two-factor hint and where to
        make an app password ("" for providers without one)."""
        if not self.two_factor_hint:
            return ""
        return f". {self.two_factor_hint}: {self.app_password_help}"


@functools.cache
def presets() -> dict[str, Preset]:
    data = tomllib.loads(DATA.read_text(encoding="utf-8"))
    out = {}
    for key, entry in data.items():
        entry = dict(entry)
        imap, smtp = entry.pop("imap", None), entry.pop("smtp", None)
        out[key] = Preset(
            key=key,
            name=entry.pop("name"),
            imap=Server(**imap) if imap else None,
            smtp=Server(**smtp) if smtp else None,
            auth=tuple(entry.pop("auth")),
            domains=tuple(entry.pop("domains", ())),
            mx=tuple(entry.pop("mx", ())),
            **entry,
        )
    return out


PROVIDERS = tuple(presets())


def preset(key: str) -> Preset:
    try:
        return presets()[key]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise InputError("--provider", f"unknown provider {key!r} (known: {known})") from None


@dataclass(frozen=True)
class Discovered:
    provider: str
    imap: Server | None
    smtp: Server | None
    how: str  # "domain", "srv" or "mx <host>"


def discover(email: str, resolver: Resolver) -> Discovered | None:
    """The servers of `email`'s domain, or None when nothing says."""
    domain = domain_of(email.lower())
    for p in presets().values():
        if domain in p.domains:
            return Discovered(p.key, p.imap, p.smtp, "domain")
    try:
        imap = _srv(resolver, domain, (("_imaps._tcp", "tls"), ("_imap._tcp", "starttls")))
        smtp = _srv(
            resolver, domain, (("_submissions._tcp", "tls"), ("_submission._tcp", "starttls"))
        )
        if imap is not None:
            return Discovered("other", imap, smtp, "srv")
        for host in _mx_hosts(resolver, domain):
            for p in presets().values():
                if any(host == m or host.endswith("." + m) for m in p.mx):
                    return Discovered(p.key, p.imap, p.smtp, f"mx {host}")
    except DnsTempError:
        return None
    return None


def _srv(resolver: Resolver, domain: str, names: tuple[tuple[str, str], ...]) -> Server | None:
    for prefix, security in names:
        for record in resolver.srv(f"{prefix}.{domain}"):
            target, port = record.target, record.port
            if target:  # "." means: no such service here (RFC 2782)
                # Port 465 is implicit TLS even where published as _submission.
                return Server(target, port, "tls" if port in (465, 993) else security)
    return None


def _mx_hosts(resolver: Resolver, domain: str) -> list[str]:
    return [record.exchange.lower() for record in resolver.mx(domain)]
