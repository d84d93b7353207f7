"""Receiver: a webhook endpoint on loopback (http.server in a thread) that records every
request and answers as told: a list of statuses used in turn (the last repeats), an
optional delay before answering, and Retry-After."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=lambda: [204])
    delay: float = 0.0
    retry_after: str | None = None
    port: int = 0
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.requests.append(
                    Received(
                        {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                    )
                )
                time.sleep(receiver.delay)
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                if receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?from=gateway"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
