"""Finding a mailbox's servers (presets, RFC 6186 SRV, MX) and refusing private hosts."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import DnsConfig, SecurityConfig
from gateway.errors import InputError
from gateway.imap.connection import MailboxError
from gateway.netguard import check_host, is_allowed
from gateway.providers import Server, discover, presets
from gateway.resolver import Resolver
from gateway.vault import Vault
from inbound.imap.mailboxes import MailboxRequest, add_mailbox
from tests.peers.dns import ZoneServer
from tests.peers.dovecot import ImapUser


@pytest.fixture
def dns(zone_server: ZoneServer) -> ZoneServer:
    zone_server.clear()
    return zone_server


def resolver(dns: ZoneServer) -> Resolver:
    return Resolver(DnsConfig(nameservers=(dns.address,), timeout=2.0))


def test_every_preset_is_complete() -> None:
    for key, preset in presets().items():
        assert preset.name and preset.auth, key
        if key != "other":
            assert preset.imap and preset.imap.security == "tls" and preset.imap.port == 993
            assert preset.smtp and preset.smtp.port in (465, 587)
        if "password" in preset.auth and key not in ("other",):
            assert preset.app_password_help.startswith("https://"), key


def test_a_providers_own_domain_needs_no_lookup(dns: ZoneServer) -> None:
    found = discover("someone@gmail.com", resolver(dns))
    assert found is not None and found.provider == "gmail" and found.how == "domain"
    assert found.imap == Server("imap.gmail.com", 993, "tls")
    assert dns.zone.queries == []


def test_srv_records_name_the_servers(dns: ZoneServer) -> None:
    dns.set("_imaps._tcp.corp.test", "SRV", (10, 0, 993, "mail.corp.test"))
    dns.set("_submission._tcp.corp.test", "SRV", (10, 0, 587, "smtp.corp.test"))
    found = discover("bob@corp.test", resolver(dns))
    assert found is not None and found.how == "srv"
    assert found.imap == Server("mail.corp.test", 993, "tls")
    assert found.smtp == Server("smtp.corp.test", 587, "starttls")


def test_port_465_is_implicit_tls_even_under_submission(dns: ZoneServer) -> None:
    dns.set("_imap._tcp.corp.test", "SRV", (0, 0, 143, "mail.corp.test"))
    dns.set("_submission._tcp.corp.test", "SRV", (0, 0, 465, "smtp.corp.test"))
    found = discover("bob@corp.test", resolver(dns))
    assert found is not None
    assert found.imap == Server("mail.corp.test", 143, "starttls")
    assert found.smtp == Server("smtp.corp.test", 465, "tls")


def test_mx_hosts_reveal_a_hosted_domain(dns: ZoneServer) -> None:
    dns.set("acme-hosted.test", "MX", (1, "acme-hosted-test.mail.protection.outlook.com"))
    found = discover("bob@acme-hosted.test", resolver(dns))
    assert found is not None and found.provider == "microsoft365"
    assert found.how == "mx acme-hosted-test.mail.protection.outlook.com"
    dns.set("g.test", "MX", (5, "alt1.aspmx.l.google.com"), (1, "aspmx.l.google.com"))
    found = discover("bob@g.test", resolver(dns))
    assert found is not None and found.provider == "gmail"


def test_nothing_known_means_ask(dns: ZoneServer) -> None:
    dns.set("plain.test", "MX", (10, "mx.plain.test"))
    assert discover("bob@plain.test", resolver(dns)) is None
    dns.set("broken.test", "SERVFAIL")
    assert discover("bob@broken.test", resolver(dns)) is None


def test_add_finds_the_server_by_srv_and_checks_its_address(
    db, imap_config, account_id, imap_user: ImapUser, dns: ZoneServer
) -> None:
    dns.set("_imap._tcp.acme.com", "SRV", (0, 0, imap_user.server.port, "imap.acme.com"))
    dns.set("imap.acme.com", "A", "127.0.0.1")
    config = replace(imap_config, dns=DnsConfig(nameservers=(dns.address,), timeout=2.0))
    vault = Vault.load(config.secret_key_file)
    # Found by SRV (STARTTLS there: this Dovecot has no TLS, so say "none").
    request = MailboxRequest(email="bob@acme.com", imap_security="none", username=imap_user.name)
    mailbox = add_mailbox(db, config, vault, request, imap_user.password)
    assert (mailbox.imap_host, mailbox.imap_port) == ("imap.acme.com", imap_user.server.port)

    closed = replace(config, security=SecurityConfig())
    dns.set("evil.acme.org", "A", "169.254.169.254")
    request = MailboxRequest(email="bob@acme.org", imap_host="evil.acme.org", imap_port=993)
    with pytest.raises(MailboxError, match=r"169\.254\.169\.254, a link-local"):
        add_mailbox(db, closed, vault, request, "x")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
     "::ffff:10.0.0.1", "64:ff9b::7f00:1"],
)  # fmt: skip
def test_special_addresses_are_refused(address: str) -> None:
    with pytest.raises(InputError, match="connects only to public servers"):
        check_host(address, 993, ())


def test_an_allowed_network_opens_exactly_itself() -> None:
    assert check_host("127.0.0.1", 993, ("127.0.0.0/8",)) == "127.0.0.1"
    with pytest.raises(InputError):
        check_host("10.0.0.1", 993, ("127.0.0.0/8",))


@given(st.ip_addresses())
def test_only_global_unicast_addresses_pass_by_default(address) -> None:
    inner = [address]
    if address.version == 6:
        inner += [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        if address in ipaddress.ip_network("64:ff9b::/96"):
            inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    expected = all(a.is_global and not a.is_multicast for a in inner)
    if address.version == 6 and address.ipv4_mapped is not None:
        expected = all(a.is_global and not a.is_multicast for a in inner[1:])
    assert is_allowed(address, []) == expected
