"""The proxy embedded in another event loop (asyncio's own, not uvloop), as the platform's own
tests or tools may run it."""

from __future__ import annotations

import asyncio
import http.client

from rollwise.platforms.local.proxy import ProxyServer, ProxySettings, RouteTable
from tests.proxy.conftest import Upstreams, get, table


def test_in_process_on_plain_asyncio(upstreams: Upstreams) -> None:
    async def main() -> None:
        server = ProxyServer(ProxySettings(read_timeout=5))
        await server.start(admin_port=None, table=RouteTable.from_dict(table({"a": 100}, upstreams, also=["b"])))
        loop = asyncio.get_running_loop()

        def requests() -> list[str]:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            return [get(conn)[1] for _ in range(20)]

        assert set(await loop.run_in_executor(None, requests)) == {"a"}
        assert server.swap(RouteTable.from_dict(table({"b": 100}, upstreams, also=["a"]))) == 2
        assert set(await loop.run_in_executor(None, requests)) == {"b"}
        snap = server.snapshot()
        assert snap.revisions["a"].requests["2xx"] == 20 and snap.revisions["b"].requests["2xx"] == 20
        await server.stop(grace=5)

    asyncio.run(main())
