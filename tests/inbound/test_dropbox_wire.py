"""Attacks at the byte level: SMTP smuggling and STARTTLS command injection."""

from __future__ import annotations

import socket
import ssl

import pytest

from gateway.models import RawMessage, Sighting
from tests.helpers.dropbox import Dropbox
from tests.helpers.pipeline import count


class Wire:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        assert self.reply().startswith(b"220 ")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One complete (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return b"\r\n".join(lines)

    def command(self, line: str) -> bytes:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


# Every end-of-data look-alike that is not CRLF.CRLF (CVE-2023-51764/51765/51766).
FAKE_ENDS = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r", b"\r.\r"]


@pytest.mark.parametrize("fake_end", FAKE_ENDS)
def test_smuggling_never_stores_a_second_message(dropbox: Dropbox, db, fake_end: bytes) -> None:
    rcpt = dropbox.address("bob@acme.com")
    wire = Wire(dropbox.port)
    wire.command("EHLO client.test")
    assert wire.command("MAIL FROM:<bob@acme.com>").startswith(b"250")
    assert wire.command(f"RCPT TO:<{rcpt}>").startswith(b"250")
    assert wire.command("DATA").startswith(b"354")
    smuggled = (
        b"MAIL FROM:<bob@acme.com>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n"
        b"From: bob@acme.com\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
    )
    outer = b"From: bob@acme.com\r\nTo: carol@client.com\r\nSubject: outer\r\n\r\nouter body"
    # The smuggled part's own CRLF.CRLF is the one true end of this message.
    wire.send(outer + fake_end + smuggled)
    final = wire.reply()
    assert final.startswith(b"550 5.6.0"), final
    # Nothing the smuggled commands said was run as a command.
    wire.send(b"NOOP\r\n")
    assert wire.reply().startswith(b"250")
    wire.close()
    assert count(db, RawMessage) == 0 and count(db, Sighting) == 0


def test_commands_pipelined_after_starttls_are_discarded(dropbox: Dropbox) -> None:
    wire = Wire(dropbox.port)
    wire.command("EHLO client.test")
    wire.send(b"STARTTLS\r\nNOOP\r\nRSET\r\n")  # CVE-2011-0411, aiosmtpd CVE-2024-34083
    assert wire.reply().startswith(b"220")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(wire.sock, server_hostname="localhost")
    tls.settimeout(1.0)
    with pytest.raises(TimeoutError):
        tls.recv(1024)  # 0 replies before the client speaks inside TLS
    tls.settimeout(10)
    tls.sendall(b"EHLO client.test\r\n")
    assert tls.recv(4096).startswith(b"250-")
    tls.close()


def test_overlong_lines_are_refused(dropbox: Dropbox, db) -> None:
    wire = Wire(dropbox.port)
    assert wire.command("EHLO " + "x" * 600).startswith(b"500")
    wire.command("EHLO client.test")
    wire.command("MAIL FROM:<bob@acme.com>")
    wire.command(f"RCPT TO:<{dropbox.address('bob@acme.com')}>")
    wire.command("DATA")
    wire.send(b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
    assert wire.reply().startswith(b"500")
    wire.close()
    assert count(db, RawMessage) == 0


def proxy_v2(src: str, dst: str, sport: int, dport: int) -> bytes:
    import ipaddress
    import struct

    body = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    body += struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize(
    "dropbox_options",
    [{"proxy_protocol": True, "policy": "trust-network", "trusted_networks": ("203.0.113.0/24",)}],
)
@pytest.mark.parametrize("version", [1, 2])
def test_proxy_protocol_client_address_is_used(dropbox: Dropbox, db, version, dropbox_options):
    rcpt = dropbox.address("bob@acme.com")

    def deliver(client_ip: str) -> bytes:
        sock = socket.create_connection(("127.0.0.1", dropbox.port), timeout=10)
        if version == 1:
            sock.sendall(f"PROXY TCP4 {client_ip} 127.0.0.1 40000 25\r\n".encode())
        else:
            sock.sendall(proxy_v2(client_ip, "127.0.0.1", 40000, 25))
        wire = Wire.__new__(Wire)
        wire.sock, wire.buffer = sock, b""
        assert wire.reply().startswith(b"220 ")
        wire.command("EHLO client.test")
        wire.command("MAIL FROM:<stranger@nowhere.test>")
        wire.command(f"RCPT TO:<{rcpt}>")
        wire.command("DATA")
        wire.send(b"From: stranger@nowhere.test\r\nSubject: x\r\n\r\nx\r\n.\r\n")
        result = wire.reply()
        wire.close()
        return result

    assert deliver("203.0.113.9").startswith(b"250")  # trusted by its real address
    assert deliver("198.51.100.9").startswith(b"550 5.7.1")  # checked: not a user
    assert count(db, RawMessage) == 1


@pytest.mark.parametrize(
    "dropbox_options",
    [{"proxy_protocol": True, "policy": "trust-network", "trusted_networks": ("203.0.113.0/24",)}],
)
def test_the_proxied_client_address_outlives_starttls(dropbox: Dropbox, db, dropbox_options):
    """aiosmtpd starts a new session after STARTTLS; the client's address from the
    PROXY header must not turn into the balancer's there (SPF, trust, limits)."""
    import smtplib

    rcpt = dropbox.address("bob@acme.com")
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE

    from tests.helpers.proxied import ProxiedSMTP

    def deliver(client_ip: str) -> None:
        with ProxiedSMTP(client_ip, "127.0.0.1", dropbox.port, timeout=10) as client:
            client.starttls(context=insecure)
            client.sendmail(
                "stranger@nowhere.test", [rcpt], b"From: stranger@nowhere.test\r\n\r\nx\r\n"
            )

    deliver("203.0.113.9")  # trusted by its real address, after STARTTLS too
    with pytest.raises(smtplib.SMTPDataError) as refused:
        deliver("198.51.100.9")  # and checked by it: not a user
    assert refused.value.smtp_code == 550
    assert count(db, RawMessage) == 1
