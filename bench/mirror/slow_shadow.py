"""A shadow that answers every request after 1 s, on one asyncio loop: no thread per connection,
so that hundreds of copies in flight cost it next to no CPU. With it, the benchmark shows what the
proxy's mirroring costs the primary apart from what a thread-per-connection shadow (the demo app)
takes from the cores the primary and the load generator share.

Usage: python slow_shadow.py PORT [DELAY_SECONDS]"""

from __future__ import annotations

import asyncio
import contextlib
import sys

BODY = b'{"version": "shadow", "greeting": "hello", "path": "/"}\n'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + b"content-length: %d\r\nx-demo-version: shadow\r\n\r\n" % len(BODY)
    + BODY
)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(ANSWER)
    writer.close()


async def main(port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: serve(r, w, delay), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 1.0))
