"""ZoneServer: an authoritative DNS server (twisted.names) on loopback, fed from a dict.

Records are {(name, type): [value, ...]} with type "TXT", "A", "AAAA", "MX", "SRV", "PTR",
"CNAME" (answered with the target's records of the type asked, as a recursive
resolver would), "SERVFAIL" (answer SERVFAIL for that name: a temperror) or "TIMEOUT"
(never answer). A TXT value is split into strings of 255; a tuple gives its strings.
The reactor runs in a thread for the whole test session; tests change records
between messages.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.names import dns, error, server
from twisted.names.common import ResolverBase

from tests.peers.reactor import call, reactor

_TYPES = {
    "TXT": dns.TXT,
    "A": dns.A,
    "MX": dns.MX,
    "AAAA": dns.AAAA,
    "SRV": dns.SRV,
    "PTR": dns.PTR,
}


class _Zone(ResolverBase):
    def __init__(self) -> None:
        super().__init__()
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.queries: list[tuple[str, str]] = []

    def _lookup(self, name: bytes, cls: int, type_: int, timeout: Any) -> Any:
        text = name.decode("ascii", "replace").lower().rstrip(".")
        kind = dns.QUERY_TYPES.get(type_, str(type_))
        self.queries.append((text, kind))
        answers = []
        alias = self.records.get((text, "CNAME"))
        if alias and kind != "CNAME":
            target = alias[0].lower().rstrip(".")
            pointer: Any = dns.Record_CNAME(target.encode(), ttl=60)
            answers.append(dns.RRHeader(name=name, type=dns.CNAME, payload=pointer, ttl=60))
            name, text = target.encode(), target
        for value in self.records.get((text, kind), []):
            if kind == "TXT" and isinstance(value, tuple):
                chunks = [part.encode() for part in value]
                payload: Any = dns.Record_TXT(*chunks, ttl=60)
            elif kind == "TXT":
                chunks = [value[i : i + 255].encode() for i in range(0, len(value), 255)] or [b""]
                payload = dns.Record_TXT(*chunks, ttl=60)
            elif kind == "A":
                payload = dns.Record_A(value, ttl=60)
            elif kind == "AAAA":
                payload = dns.Record_AAAA(value, ttl=60)
            elif kind == "MX":
                preference, host = value
                payload = dns.Record_MX(preference, host.encode(), ttl=60)
            elif kind == "SRV":
                priority, weight, port, target = value
                payload = dns.Record_SRV(priority, weight, port, target.encode(), ttl=60)
            elif kind == "PTR":
                payload = dns.Record_PTR(value.encode(), ttl=60)
            else:
                continue
            answers.append(dns.RRHeader(name=name, type=_TYPES[kind], payload=payload, ttl=60))
        if not answers and not any(key[0] == text for key in self.records):
            return defer.fail(error.DomainError(name))
        return defer.succeed((answers, [], []))


class _Factory(server.DNSServerFactory):
    """Answers SERVFAIL for names the zone marks so (a resolver chain would say NXDOMAIN)."""

    zone: _Zone

    def handleQuery(self, message: Any, protocol: Any, address: Any) -> None:
        name = message.queries[0].name.name.decode("ascii", "replace").lower().rstrip(".")
        if (name, "TIMEOUT") in self.zone.records:
            self.zone.queries.append((name, "TIMEOUT"))
            return  # no answer at all: the resolver times out
        if (name, "SERVFAIL") in self.zone.records:
            self.zone.queries.append((name, "SERVFAIL"))
            response = self._responseFromMessage(message=message, rCode=dns.ESERVER)
            self.sendReply(protocol, response, address)
            return
        super().handleQuery(message, protocol, address)


class ZoneServer:
    def __init__(self) -> None:
        self.zone = _Zone()
        factory = _Factory(authorities=[self.zone])
        factory.zone = self.zone
        # UDP and TCP on one port number: a free UDP port's number may be taken for
        # TCP by another process; then try another.
        for attempt in range(20):
            protocol = dns.DNSDatagramProtocol(controller=factory)
            self._udp = call(reactor.listenUDP, 0, protocol, interface="127.0.0.1")
            self.port: int = self._udp.getHost().port
            try:
                self._tcp = call(reactor.listenTCP, self.port, factory, interface="127.0.0.1")
                break
            except CannotListenError:
                call(self._udp.stopListening)
                if attempt == 19:
                    raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, kind: str, *values: Any) -> None:
        self.zone.records[(name.lower(), kind)] = list(values)

    def clear(self) -> None:
        self.zone.records.clear()
        self.zone.queries.clear()

    def stop(self) -> None:
        reactor.callFromThread(self._udp.stopListening)
        reactor.callFromThread(self._tcp.stopListening)
