"""A capturing SMTP server on loopback (aiosmtpd in a thread of its own), to stand in for a
relay or a recipient's MX: it keeps what it receives and can be told to refuse a
recipient (any reply), to refuse DATA, to hang, and to offer STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    data: bytes
    login: str | None


@dataclass
class Sink:
    tls: ssl.SSLContext | None = None
    login: tuple[str, str] | None = None  # required credentials, if any
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply
    data_reply: str | None = None  # e.g. "451 4.3.0 try later"
    hang: float = 0.0  # seconds DATA is left unanswered
    hang_up_after_data: bool = False  # close the connection once a message is taken
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connections: list[SMTP] = []
        self.authentications = 0
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        def protocol() -> SMTP:
            options: dict[str, Any] = {}
            if self.login is not None:
                options = {"authenticator": self._authenticate, "auth_required": True}
            with warnings.catch_warnings():
                # AUTH without TLS on loopback is what this stand-in is for.
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                made = self._smtp(options)
            self.connections.append(made)
            return made

        async def start() -> None:
            self.server = await self.loop.create_server(protocol, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def _smtp(self, options: dict[str, Any]) -> SMTP:
        return SMTP(
            self,
            hostname="sink.test",
            tls_context=self.tls,
            require_starttls=False,
            auth_require_tls=self.tls is not None,
            enable_SMTPUTF8=True,
            decode_data=False,
            **options,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        self.authentications += ok
        return AuthResult(success=ok, handled=False, auth_data=data)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2 (Google's and Microsoft's SASL): the token must be login[1]."""
        import base64

        if len(args) < 2 or self.login is None:
            return AuthResult(success=False, handled=False)
        text = base64.b64decode(args[1]).decode()
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        ok = fields.get("user") == self.login[0] and fields.get("auth") == f"Bearer {self.login[1]}"
        data = LoginPassword(fields.get("user", "").encode(), b"")
        self.authentications += ok
        return AuthResult(success=ok, handled=False, auth_data=data)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hang:
            await asyncio.sleep(self.hang)
        if self.data_reply is not None:
            return self.data_reply
        data = envelope.original_content
        assert isinstance(data, bytes)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, login)
        )
        if self.hang_up_after_data and server.transport is not None:
            self.loop.call_later(0.05, server.transport.close)  # after the 250 went out
        return "250 2.0.0 OK sink"

    def close(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                self.server.close()
                for connection in self.connections:  # as a server going away does
                    transport = connection.transport
                    if isinstance(transport, asyncio.Transport):
                        transport.abort()  # no TLS goodbye to wait for
                handlers = [c._handler_coroutine for c in self.connections if c._handler_coroutine]
                for handler in handlers:
                    handler.cancel()
                if handlers:
                    await asyncio.wait(handlers, timeout=5)
                await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
