"""COMPRESS=DEFLATE (RFC 4978) for imaplib: what the server sends is inflated as it is
read, what we send is deflated.

Header scans and bodies are text that shrinks 3-5 times; Gmail, Dovecot, Cyrus and
Zimbra offer it (Microsoft's servers do not). After the tagged OK of COMPRESS
DEFLATE both directions are raw deflate streams (no zlib header), each write
flushed with Z_SYNC_FLUSH so that every command and response can be read at
once. imaplib reads through `file` (readline, read) and writes through `send`;
both are swapped here, and bytes the old reader had already taken off the
socket after the OK are inflated first.

Memory per connection stays small (a few hundred mailboxes idle in one process):
inflating needs the server's 32 KB window; our commands are deflated with a
small window and memory level. Inflated output is produced only as reads ask
for it, so a small compressed message cannot grow into a large buffer.
"""

from __future__ import annotations

import imaplib
import io
import socket
import ssl
import zlib
from typing import Any

CHUNK = 16 * 1024  # bytes received, and inflated bytes produced, per step


class _InflatingRaw(io.RawIOBase):
    """The socket's raw deflate stream, read as the bytes it stands for."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.inflate = zlib.decompressobj(wbits=-15)
        self.tail = pending  # compressed bytes not yet inflated

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        view = memoryview(buffer).cast("B")
        while True:
            # Also with no input left: inflate may hold output from earlier input.
            out = self.inflate.decompress(self.tail, min(len(view), CHUNK))
            self.tail = self.inflate.unconsumed_tail
            if out:
                view[: len(out)] = out
                return len(out)
            if self.tail:
                continue
            try:
                data = self.sock.recv(CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError):  # non-blocking (idle_check)
                return None
            if not data:
                return 0  # the server closed the connection
            self.tail = data


def start(imap: imaplib.IMAP4) -> None:
    """Turn compression on, right after the server's tagged OK to COMPRESS DEFLATE."""
    sock: socket.socket = imap.sock
    old = imap.file
    assert isinstance(old, io.BufferedReader)  # imaplib's sock.makefile("rb")
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        pending = old.peek()  # what the old reader took off the socket past the OK
        if pending:
            old.read(len(pending))
    except (BlockingIOError, ssl.SSLWantReadError):  # nothing there
        pending = b""
    finally:
        sock.settimeout(timeout)
    imap.file = io.BufferedReader(_InflatingRaw(sock, bytes(pending)), CHUNK)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -9, 1)  # tiny: our commands are short

    def send(data: bytes) -> None:
        sock.sendall(deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))

    imap.send = send  # type: ignore[method-assign,assignment]
