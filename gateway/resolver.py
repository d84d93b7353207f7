"""Resolver: every DNS look-up of the gateway, aimed at [dns] nameservers (or the system's).

Blocking (dnspython's sync resolver): callers run it off the event loop.
NXDOMAIN and empty answers are empty results; timeouts and server failures
raise DnsTempError, which SPF/DKIM turn into temperror. Answers come back as
plain typed values (MX, SRV, TXT strings, addresses, names), never as dnspython's
record objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rdtypes.txtbase
import dns.resolver

from gateway.config import DnsConfig, host_port
from gateway.errors import GatewayError


class DnsTempError(GatewayError):
    """The DNS did not answer in time, or answered SERVFAIL."""


@dataclass(frozen=True)
class MX:
    preference: int
    exchange: str  # without the final dot; "" for the root: a null MX (RFC 7505)


@dataclass(frozen=True)
class SRV:
    priority: int
    weight: int
    port: int
    target: str  # without the final dot; "" for the root: no such service (RFC 2782)


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

    def mx(self, name: str) -> list[MX]:
        """The MX records of `name`, most preferred first."""
        found = [
            MX(r.preference, _text(r.exchange))
            for r in self._records(name, "MX")
            if isinstance(r, dns.rdtypes.ANY.MX.MX)
        ]
        return sorted(found, key=lambda r: r.preference)

    def srv(self, name: str) -> list[SRV]:
        """The SRV records of `name`, by priority, then the heaviest first."""
        found = [
            SRV(r.priority, r.weight, r.port, _text(r.target))
            for r in self._records(name, "SRV")
            if isinstance(r, dns.rdtypes.IN.SRV.SRV)
        ]
        return sorted(found, key=lambda r: (r.priority, -r.weight))

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record's strings joined (RFC 7208 3.3)."""
        return [b"".join(strings) for strings in self.txt_strings(name)]

    def txt_strings(self, name: str, rdtype: str = "TXT") -> list[tuple[bytes, ...]]:
        """Each TXT (or SPF) record's strings, as they were published."""
        return [
            tuple(r.strings)
            for r in self._records(name, rdtype)
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)
        ]

    def addresses(self, name: str, rdtype: str = "A") -> list[str]:
        """The IPv4 ("A") or IPv6 ("AAAA") addresses of `name`."""
        return [
            r.address
            for r in self._records(name, rdtype)
            if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
        ]

    def ptr(self, name: str) -> list[str]:
        """The names a PTR look-up of `name` gives, without the final dot."""
        return [
            _text(r.target)
            for r in self._records(name, "PTR")
            if isinstance(r, dns.rdtypes.ANY.PTR.PTR)
        ]

    def _records(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:  # timeouts, SERVFAIL, no nameserver
            raise DnsTempError(f"{name}/{rdtype}: {exc}") from exc
        return list(answer.rrset or [])


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True) if name != dns.name.root else ""
