"""The dropbox against hostile and broken input: oversize mail, 8-bit headers without
SMTPUTF8, bad envelope bytes, a second STARTTLS, the error cap, per-IP limits, idle
and dripping clients, HELO clients, internal failures and one-line replies."""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from gateway import smtp_replies as replies
from gateway.models import RawMessage
from tests.helpers.dropbox import expect, from_bob, send
from tests.helpers.pipeline import count


def test_oversize_is_refused_and_nothing_stored(dropbox, db) -> None:
    big = from_bob(body=("x" * 998 + "\r\n") * 250)
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        client.rcpt(dropbox.address("bob@acme.com"))
        code, _text = client.data(big)
    assert code == 552
    assert count(db, RawMessage) == 0


def test_8bit_headers_need_smtputf8(dropbox, db) -> None:
    raw = "From: bob@acme.com\r\nTo: carol@client.com\r\nSubject: caf\u00e9\r\n\r\nx\r\n".encode()
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        client.rcpt(dropbox.address("bob@acme.com"))
        expect(client.data(raw), replies.NEEDS_SMTPUTF8_HEADERS)
    send(dropbox, raw, "bob@acme.com", dropbox.address("bob@acme.com"), mail_options=["SMTPUTF8"])
    assert count(db, RawMessage) == 1


def test_nul_and_non_ascii_envelope_senders(dropbox) -> None:
    with dropbox.client() as client:
        client.putcmd("mail", "FROM:<bob\x00@acme.com>")
        code, _ = client.getreply()
        assert code in (501, 553)
        client.send("MAIL FROM:<j\u00f6rg@acme.com>\r\n".encode())
        expect(client.getreply(), replies.NEEDS_SMTPUTF8_ADDRESS)
        client.send("MAIL FROM:<j\u00f6rg@acme.com> SMTPUTF8\r\n".encode())
        assert client.getreply()[0] == 250


def test_second_starttls_is_refused(dropbox) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with dropbox.client() as client:
        assert client.starttls(context=context)[0] == 220
        client.ehlo("client.test")
        client.putcmd("starttls")
        assert client.getreply()[0] == replies.TLS_ACTIVE.code


def test_error_cap_closes_the_connection(dropbox) -> None:
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        for _ in range(19):
            assert client.rcpt(f"nobody{_}@example.org")[0] == 550
        code, _text = client.rcpt("nobody@example.org")
        assert code == 550
        assert client.getreply() == (421, b"4.7.0 Too many errors, closing connection")


def test_enhanced_status_codes_on_stock_replies(dropbox) -> None:
    with dropbox.client() as client:
        code, text = client.docmd("BOGUS")
        assert code == 500 and text.startswith(b"5.5.2 ")
        code, text = client.docmd("RCPT", "TO:<x@y.z>")
        assert code == 503 and text.startswith(b"5.5.1 ")


@pytest.mark.parametrize("dropbox_options", [{"max_connections_per_ip": 2}])
def test_per_ip_concurrent_connection_limit(dropbox, dropbox_options) -> None:
    first, second = dropbox.client(), dropbox.client()
    with socket.create_connection(("127.0.0.1", dropbox.port), timeout=10) as third:
        assert third.recv(200).startswith(b"421 4.7.0 ")
    first.quit()
    with dropbox.client() as again:
        assert again.noop()[0] == 250
    second.quit()


@pytest.mark.parametrize("dropbox_options", [{"connections_per_minute_per_ip": 3}])
def test_per_ip_connection_rate_limit(dropbox, dropbox_options) -> None:
    for _ in range(3):
        with dropbox.client() as client:
            client.noop()
    with socket.create_connection(("127.0.0.1", dropbox.port), timeout=10) as fourth:
        assert fourth.recv(200).startswith(b"421 4.7.0 ")


@pytest.mark.parametrize("dropbox_options", [{"timeout": 1.0}])
def test_idle_clients_are_dropped(dropbox, dropbox_options) -> None:
    with socket.create_connection(("127.0.0.1", dropbox.port), timeout=10) as sock:
        greeting = sock.recv(200)
        assert greeting.startswith(b"220 ")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(200)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"421 4.4.2 ")  # then the server hangs up
        assert sock.recv(200) == b""


def test_undecodable_envelope_bytes_are_refused(dropbox) -> None:
    with dropbox.client() as client:
        client.send(b"MAIL FROM:<b\xffob@acme.com>\r\n")
        code, _ = client.getreply()
        assert code in (500, 501, 553)
        client.send(b"MAIL FROM:<bob@acme.com>\r\n")
        assert client.getreply()[0] == 250
        client.send(b"RCPT TO:<x\x00@" + dropbox.config.dropbox.domain.encode() + b">\r\n")
        assert client.getreply()[0] in (501, 553)


@pytest.mark.parametrize("dropbox_options", [{"max_session_time": 1.5, "timeout": 10.0}])
def test_a_client_dripping_bytes_is_cut_off(dropbox, db, dropbox_options) -> None:
    import time

    with socket.create_connection(("127.0.0.1", dropbox.port), timeout=10) as sock:
        sock.recv(200)
        sock.sendall(b"EHLO client.test\r\nMAIL FROM:<bob@acme.com>\r\n")
        sock.sendall(f"RCPT TO:<{dropbox.address('bob@acme.com')}>\r\nDATA\r\n".encode())
        received = b""
        try:
            for _ in range(40):  # a byte every 0.1 s never trips the idle timeout
                sock.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass  # the server hung up
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
    assert b"421 4.4.2 Connection time limit reached" in received
    assert count(db, RawMessage) == 0


def test_helo_clients_get_plain_replies(dropbox) -> None:
    client = smtplib.SMTP("127.0.0.1", dropbox.port, timeout=30)
    try:
        client.helo("old.client.test")
        code, text = client.docmd("RSET")
        assert (code, text) == (250, b"OK")
    finally:
        client.quit()


def test_an_internal_failure_is_try_later_never_250(dropbox, db, monkeypatch) -> None:
    from inbound.verification import SenderVerifier

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(SenderVerifier, "verify", broken)
    with dropbox.client() as client:
        client.mail("bob@acme.com")
        client.rcpt(dropbox.address("bob@acme.com"))
        expect(client.data(from_bob()), replies.TRY_LATER)
    assert count(db, RawMessage) == 0


def test_reply_text_is_always_one_line() -> None:
    from gateway.errors import SenderRejected
    from gateway.smtp_server import reply_for

    hostile = SenderRejected(replies.SENDER_NOT_VERIFIED._replace(text="x\r\n250 OK\r\nnope"))
    assert "\r" not in reply_for(hostile) and "\n" not in reply_for(hostile)
