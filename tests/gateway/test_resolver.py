"""The resolver answers with plain typed values, against a real DNS server on loopback
(twisted.names): MX by preference, the null MX, SRV by priority and weight, TXT
strings joined, addresses, PTR names; no answer is empty, SERVFAIL a DnsTempError."""

from __future__ import annotations

import pytest

from gateway.config import DnsConfig
from gateway.resolver import MX, SRV, DnsTempError, Resolver
from tests.peers.dns import ZoneServer


@pytest.fixture
def resolver(zone_server: ZoneServer) -> Resolver:
    zone_server.clear()
    return Resolver(DnsConfig(nameservers=(zone_server.address,), timeout=3.0))


def test_mx_most_preferred_first_and_the_null_mx(zone_server: ZoneServer, resolver) -> None:
    zone_server.set("acme.test", "MX", (20, "mx2.acme.test"), (10, "mx1.acme.test"))
    zone_server.set("nomail.test", "MX", (0, ""))
    assert resolver.mx("acme.test") == [MX(10, "mx1.acme.test"), MX(20, "mx2.acme.test")]
    assert resolver.mx("nomail.test") == [MX(0, "")]  # RFC 7505: "."


def test_srv_by_priority_then_weight(zone_server: ZoneServer, resolver) -> None:
    zone_server.set(
        "_imaps._tcp.acme.test",
        "SRV",
        (10, 5, 993, "imap2.acme.test"),
        (0, 1, 993, "imap1.acme.test"),
        (10, 50, 993, "imap3.acme.test"),
    )
    zone_server.set("_submission._tcp.acme.test", "SRV", (0, 0, 0, ""))
    assert [r.target for r in resolver.srv("_imaps._tcp.acme.test")] == [
        "imap1.acme.test",
        "imap3.acme.test",
        "imap2.acme.test",
    ]
    assert resolver.srv("_submission._tcp.acme.test") == [SRV(0, 0, 0, "")]


def test_txt_strings_joined_and_kept(zone_server: ZoneServer, resolver) -> None:
    long = "v=spf1 " + "ip4:192.0.2.1 " * 30 + "-all"  # over 255: several strings
    zone_server.set("acme.test", "TXT", long)
    assert resolver.txt("acme.test") == [long.encode()]
    [strings] = resolver.txt_strings("acme.test")
    assert len(strings) == 2 and b"".join(strings) == long.encode()


def test_addresses_and_ptr(zone_server: ZoneServer, resolver) -> None:
    zone_server.set("host.acme.test", "A", "192.0.2.7")
    zone_server.set("host.acme.test", "AAAA", "2001:db8::7")
    zone_server.set("7.2.0.192.in-addr.arpa", "PTR", "host.acme.test")
    assert resolver.addresses("host.acme.test") == ["192.0.2.7"]
    assert resolver.addresses("host.acme.test", "AAAA") == ["2001:db8::7"]
    assert resolver.ptr("7.2.0.192.in-addr.arpa") == ["host.acme.test"]


def test_no_answer_is_empty_and_servfail_is_temporary(zone_server: ZoneServer, resolver) -> None:
    zone_server.set("acme.test", "A", "192.0.2.1")
    assert resolver.mx("acme.test") == []  # the name exists, no MX
    assert resolver.mx("nowhere.test") == []  # NXDOMAIN
    zone_server.set("broken.test", "SERVFAIL", "")
    with pytest.raises(DnsTempError):
        resolver.mx("broken.test")
