"""Where a mailbox's calendars are: its provider's CalDAV URL, Microsoft Graph, or for
any other server RFC 6764 discovery: the _caldavs._tcp SRV record (with its TXT
path), then _caldav._tcp (plain HTTP, only to [security] allowed_private_networks,
as for IMAP), then https://<domain>/.well-known/caldav."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.addresses import domain_of
from gateway.config import Config
from gateway.errors import InputError
from gateway.imap.connection import REFUSED, MailboxError
from gateway.models import Mailbox
from gateway.netguard import check_host, in_networks
from gateway.providers import presets
from gateway.resolver import DnsTempError, Resolver


@dataclass(frozen=True)
class Service:
    kind: str  # caldav | graph
    url: str
    how: str  # preset | srv | well-known | graph


def calendar_service(mailbox: Mailbox, config: Config, resolver: Resolver) -> Service:
    """The mailbox's calendar service (raises MailboxError when none can be used)."""
    preset = presets().get(mailbox.provider)
    if preset is not None and preset.calendar == "graph":
        return Service("graph", config.calendar.graph_url.rstrip("/"), "graph")
    if preset is not None and preset.caldav_url:
        return Service("caldav", preset.caldav_url.replace("{email}", mailbox.email), "preset")
    domain = domain_of(mailbox.email.lower())
    found = _srv(resolver, domain)
    service = found or Service("caldav", f"https://{domain}/.well-known/caldav", "well-known")
    check_url(config, resolver, service.url)
    return service


def check_url(config: Config, resolver: Resolver, url: str) -> None:
    """Refuse a URL whose host is not public (or allowed), or plain HTTP to a public host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = config.security.allowed_private_networks
    try:
        address = check_host(host, port, allowed, what="calendar", resolver=resolver)
    except InputError as exc:
        raise MailboxError(REFUSED, str(exc)) from exc
    if parts.scheme != "https" and not in_networks(address, allowed):
        raise MailboxError(REFUSED, f"{url}: CalDAV without TLS to a public server")


def _srv(resolver: Resolver, domain: str) -> Service | None:
    for prefix, scheme in (("_caldavs._tcp", "https"), ("_caldav._tcp", "http")):
        try:
            records = resolver.srv(f"{prefix}.{domain}")
        except DnsTempError:
            return None
        for record in records:
            if not record.target:
                continue  # "." : no such service here
            path = _path(resolver, f"{prefix}.{domain}")
            return Service("caldav", f"{scheme}://{record.target}:{record.port}{path}", "srv")
    return None


def _path(resolver: Resolver, name: str) -> str:
    """The TXT record's path= (RFC 6764 section 4), else /.well-known/caldav."""
    try:
        texts = resolver.txt(name)
    except DnsTempError:
        texts = []
    for text in texts:
        value = text.decode("utf-8", "replace")
        if value.startswith("path="):
            path = value[5:].strip()
            return path if path.startswith("/") else "/" + path
    return "/.well-known/caldav"
