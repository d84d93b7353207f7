"""A fast local webhook receiver for bench/webhooks.py: HTTP/1.1 on loopback,
answers 204 to every POST (or never answers, with --dead), and verifies every
signature with the standardwebhooks package. On SIGTERM it prints
"received N verified M bad B" and exits.

    python -m bench.webhook_receiver PORT SECRET [--dead]
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from standardwebhooks import Webhook, WebhookVerificationError

counts = {"received": 0, "verified": 0, "bad": 0}


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hook: Webhook | None
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            counts["received"] += 1
            if hook is None:  # --dead: hold the connection, never answer
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(3600)
                return
            try:
                hook.verify(body, headers)
                counts["verified"] += 1
            except WebhookVerificationError:
                counts["bad"] += 1
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, secret: str, dead: bool) -> None:
    hook = None if dead else Webhook(secret)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, hook), "127.0.0.1", port, backlog=512
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    print(
        f"received {counts['received']} verified {counts['verified']} bad {counts['bad']}",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], "--dead" in sys.argv[3:]))
