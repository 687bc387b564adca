"""The floor: a reverse proxy on the same stack as Rollwise's (asyncio.Protocol + httptools +
uvloop) with none of its features — a 90/10 random choice per request, raw bytes both ways, no
header handling, no stats, no timeouts, no error answers. Not for use; the benchmark runs it to
show what the stack itself costs, apart from what the proxy does with it.

    python bench/proxy/floor.py PORT ROUTES_JSON   (uses the first two revisions' first upstream)"""

from __future__ import annotations

import asyncio
import json
import random
import sys

import httptools
import uvloop

with open(sys.argv[2]) as f:
    routes = json.load(f)
ADDRS: list[tuple[str, int]] = []
for rev in ("stable", "canary"):
    host, _, port = routes["upstreams"][rev][0].rpartition(":")
    ADDRS.append((host, int(port)))
IDLE: dict[int, list[Up]] = {0: [], 1: []}


class Up(asyncio.Protocol):
    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.client is not None
        self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.client = None
        IDLE[self.idx].append(self)


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport
        self.data = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data = data
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        idx = 0 if random.random() < 0.9 else 1
        if IDLE[idx]:
            up = IDLE[idx].pop()
            up.client = self
            up.transport.write(self.data)
        else:
            asyncio.get_running_loop().create_task(self.connect(idx, self.data))

    async def connect(self, idx: int, data: bytes) -> None:
        _, up = await asyncio.get_running_loop().create_connection(lambda: Up(idx), *ADDRS[idx])
        up.client = self
        up.transport.write(data)


async def main() -> None:
    await asyncio.get_running_loop().create_server(Client, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()


uvloop.run(main())
