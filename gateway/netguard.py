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

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_host(host: str, port: int, allowed: Sequence[str], *, what: str = "host") -> str:
    """The address to connect to for host:port (the first allowed one), or InputError."""
    networks = [ipaddress.ip_network(n, strict=False) for n in allowed]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(what, f"{host}: cannot resolve ({exc})") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
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


def is_allowed(
    address: IPAddress, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in networks):
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
