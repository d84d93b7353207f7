"""Hosts that users type in must not point the gateway at its own network (SSRF).

`check_host()` resolves a host name and refuses it when any of its addresses is
loopback, private, link-local (cloud metadata at 169.254.169.254 included),
multicast, reserved or otherwise not global, unless it lies in one of
`[security] allowed_private_networks`. Callers then connect to the checked
address, not to the name again, so a second DNS answer cannot slip past.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from gateway.errors import InputError
from gateway.resolver import DnsTempError, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4


def check_host(
    host: str,
    port: int,
    allowed: Sequence[str],
    *,
    what: str = "host",
    resolver: Resolver | None = None,
) -> str:
    """The address to connect to for host:port (the first allowed one), or InputError.

    Names are resolved with `resolver` ([dns] nameservers) when given, else by the
    system (which also reads /etc/hosts)."""
    networks = [ipaddress.ip_network(n, strict=False) for n in allowed]
    addresses = _resolve(host, port, what, resolver)
    if not addresses:
        raise InputError(what, f"{host}: no address")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_allowed(address, networks):
            raise InputError(
                what,
                f"{host} resolves to {address}, a {kind_of(address)} address; the gateway "
                "connects only to public servers (an operator can allow a network with "
                "[security] allowed_private_networks)",
            )
    return addresses[0]


def _resolve(host: str, port: int, what: str, resolver: Resolver | None) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    if resolver is not None:
        try:
            found = [*resolver.addresses(host, "A"), *resolver.addresses(host, "AAAA")]
        except DnsTempError as exc:
            raise InputError(what, f"{host}: cannot resolve ({exc})") from exc
        if not found:
            raise InputError(what, f"{host}: no such host")
        return list(dict.fromkeys(found))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(what, f"{host}: cannot resolve ({exc})") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def in_networks(address: str, networks: Sequence[str]) -> bool:
    """Whether `address` lies in one of `networks` (CIDR texts, as in config)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def is_allowed(
    address: IPAddress, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    if any(address in network for network in networks):
        return True
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address: judge the IPv4 address too.
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address in NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            if inner is not None and not is_allowed(inner, networks):
                return False
        if address.ipv4_mapped is not None:
            return True
    return address.is_global and not address.is_multicast


def kind_of(address: IPAddress) -> str:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata)"
    if address.is_private:
        return "private"
    if address.is_multicast:
        return "multicast"
    return "reserved"
