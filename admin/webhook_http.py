"""One POST to a webhook endpoint, to the address that was checked (gateway.netguard),
never to a second DNS answer: the socket goes to that address; TLS still verifies
the certificate for the URL's host name, which is also the Host header."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.webhooks import Target

MAX_ANSWER = 64 * 1024  # bytes of an endpoint's answer read (kept for the log: 500)


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: float | None  # seconds, when the endpoint said (429, 503)
    text: str  # the start of the body, for the delivery log


class _Pinned(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTls(_Pinned):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target, timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST `body`; OSError (refused, reset, timed out, TLS) when there is no answer."""
    parts = urlsplit(target.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: _Pinned
    if target.tls:
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        connection = _PinnedTls(target, timeout, context)
    else:
        connection = _Pinned(target, timeout)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={**headers, "user-agent": "crm-email-gateway-webhooks"},
        )
        response = connection.getresponse()
        text = response.read(MAX_ANSWER).decode("utf-8", "replace")[:500]
        return Answer(response.status, _retry_after(response.getheader("retry-after")), text)
    except http.client.HTTPException as exc:
        raise OSError(f"not an HTTP answer: {exc!r}") from exc
    finally:
        connection.close()


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is not honoured: the schedule applies
    return float(value.strip())
