"""Resolver: every DNS look-up of the gateway, aimed at [dns] nameservers (or the system's).

Blocking (dnspython's sync resolver): callers run it off the event loop.
NXDOMAIN and empty answers are empty results; timeouts and server failures
raise DnsTempError, which SPF/DKIM turn into temperror.
"""

from __future__ import annotations

import dns.exception
import dns.nameserver
import dns.resolver

from gateway.config import DnsConfig, host_port
from gateway.errors import GatewayError


class DnsTempError(GatewayError):
    """The DNS did not answer in time, or answered SERVFAIL."""


class Resolver:
    def __init__(self, config: DnsConfig) -> None:
        if config.nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*host_port(server, 53))
                for server in config.nameservers
            ]
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = config.timeout
        self._resolver.timeout = config.timeout
        self._resolver.cache = dns.resolver.Cache()

    def lookup(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsTempError(f"{name}/{rdtype}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{name}/{rdtype}: {exc}") from exc
        return list(answer.rrset or [])

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record's strings joined (RFC 7208 3.3)."""
        return [b"".join(r.strings) for r in self.lookup(name, "TXT")]  # type: ignore[attr-defined]
