"""DATA read in large pieces (gateway.smtp_data) ends, refuses and unstuffs exactly
as stock aiosmtpd's line-by-line loop: the same bytes sent to both servers over
loopback give the same replies and the same messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.smtp_server import GatewaySMTP

SIZE_LIMIT = 3000


class Capture:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content)
        return "250 OK"


class GatewayController(Controller):
    def factory(self) -> SMTP:
        return GatewaySMTP(self.handler, max_errors=10_000, **self.SMTP_kwargs)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Controller, Controller]]:
    started = []
    for kind in (Controller, GatewayController):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = kind(
            Capture(),
            hostname="127.0.0.1",
            port=port,
            data_size_limit=SIZE_LIMIT,
            decode_data=False,
        )
        controller.start()
        started.append(controller)
    yield started[0], started[1]
    for controller in started:
        controller.stop()


def transcript(controller: Controller, stream: bytes) -> tuple[bytes, list[bytes]]:
    """Every reply to `stream` sent after HELO/MAIL/RCPT/DATA, and the messages stored."""
    handler = controller.handler
    handler.messages = []
    with socket.create_connection(("127.0.0.1", controller.port), timeout=10) as conn:
        conn.sendall(
            b"HELO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@gw.test>\r\nDATA\r\n"
            + stream
            + b"\r\nQUIT\r\n"
        )
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    replies = b"\n".join(line[:3] for line in received.split(b"\r\n") if line)
    return replies, handler.messages


_PARTS = st.sampled_from(
    [
        b"a",
        b"x" * 40,
        b".",
        b"..",
        b"\r\n",
        b"\r\n.",
        b"\r\n.\r\n",
        b"\r",
        b"\n",
        b"\n.\n",
        b"\r.\r",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(_PARTS, max_size=30).map(b"".join),
    st.sampled_from([b"", b"y" * 999, b"y" * 1000, b"y" * 1005, b"z" * 3500]),
)
@example(b"Subject: x\r\n\r\nbody\r\n", b"")
@example(b"..leading dot\r\n.\r\n", b"")  # the message ends at the lone dot
@example(b"bare\n.\nLF\r\n", b"")  # never an end: no smuggling
@example(b"bare\r.\rCR\r\n", b"")
@example(b"", b"")  # an empty message
def test_data_ends_and_refuses_as_aiosmtpd(
    servers: tuple[Controller, Controller], body: bytes, long: bytes
) -> None:
    stream = body + long + b"\r\n.\r\nNOOP\r\n"
    stock, ours = (transcript(controller, stream) for controller in servers)
    assert ours == stock
