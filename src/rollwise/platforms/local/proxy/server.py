"""Start and stop the proxy, swap its route table, read its counters.

The proxy is meant to run as its own process (see __main__.py) so that traffic keeps flowing
while the control plane restarts; the control plane drives it through the admin port. It can also
run inside another event loop (`await ProxyServer(...).start()`), which the benchmarks and the
platform's own tests may use."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from rollwise.platforms.local.proxy import native
from rollwise.platforms.local.proxy.admin import AdminConnection, json_answer
from rollwise.platforms.local.proxy.protocol import ClientConnection
from rollwise.platforms.local.proxy.routes import RouteTable, RouteTableError
from rollwise.platforms.local.proxy.settings import ProxySettings
from rollwise.platforms.local.proxy.state import ProxyState
from rollwise.platforms.local.proxy.stats import ProxySnapshot, UpstreamSnapshot, render_prometheus
from rollwise.platforms.local.proxy.table import compile_table


class ProxyServer:
    def __init__(self, settings: ProxySettings | None = None, admin_token: str | None = None) -> None:
        self.settings = settings or ProxySettings()
        self.admin_token = admin_token
        self.generation = 0
        self._state: ProxyState | None = None
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._pending_table: RouteTable | None = None

    @property
    def state(self) -> ProxyState:
        if self._state is None:
            raise RuntimeError("the proxy is not started")
        return self._state

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_host: str = "127.0.0.1",
        admin_port: int | None = 0,
        table: RouteTable | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._state = ProxyState(loop, self.settings)
        if table is not None:
            self.swap(table)
        state = self._state
        self._server = await loop.create_server(lambda: ClientConnection(state), host, port, backlog=1024)
        if admin_port is not None:
            self._admin = await loop.create_server(
                lambda: AdminConnection(self.handle_admin, self.admin_token), admin_host, admin_port
            )
        self._sweeper = loop.create_task(self._sweep())

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def admin_port(self) -> int | None:
        return None if self._admin is None else int(self._admin.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to `grace` seconds), then close all."""
        state = self.state
        state.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(state.connections):
            conn.close_if_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.active is not None for c in state.connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            conn.transport.close()
        for pool in state.pools.values():
            pool.close_idle()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._admin is not None:
            self._admin.close()
            await self._admin.wait_closed()

    async def _sweep(self) -> None:
        s = self.settings
        tick = min(max(min(s.connect_timeout, s.read_timeout, s.mirror_timeout) / 10, 0.05), 0.5)
        state = self.state
        while True:
            await asyncio.sleep(tick)
            for addr, pool in list(state.pools.items()):
                pool.tick(tick)
                if pool.retired and not pool.busy and not pool.connecting and not pool.idle:
                    del state.pools[addr]
            for conn in list(state.connections):
                conn.tick(tick)

    # --- the route table -----------------------------------------------------------------------

    def swap(self, table: RouteTable) -> int:
        """Replace the whole route table at once, or raise RouteTableError and keep the old one.
        Requests already routed finish on the table they started with. Returns the generation."""
        table.check()
        state = self.state
        generation = self.generation + 1
        compiled = compile_table(table, generation, state.pool_for, state.stats_for, state.mirror_stats_for)
        used = {addr for addrs in table.upstreams.values() for addr in addrs}
        for addr, pool in state.pools.items():
            if addr not in used:
                # Gone from the table: no new requests; warm connections close, busy ones when done.
                pool.retired = True
                pool.close_idle()
        old = state.table
        state.table = compiled
        if old is not None:
            old.retire()
        self.generation = generation
        return generation

    @property
    def table(self) -> RouteTable | None:
        compiled = self.state.table
        return None if compiled is None else compiled.source

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self) -> ProxySnapshot:
        state = self.state
        return ProxySnapshot(
            generation=self.generation,
            connections=len(state.connections),
            revisions={rev: s.snapshot() for rev, s in state.revision_stats.items()},
            mirrors={rev: s.snapshot(rev) for rev, s in state.mirror_stats.items()},
            upstreams={
                p.label: UpstreamSnapshot(inflight=len(p.busy) + len(p.connecting), idle=len(p.idle))
                for p in state.pools.values()
            },
        )

    def metrics_text(self) -> str:
        text = render_prometheus(self.snapshot())
        text += "# HELP rollwise_proxy_build_info The proxy's build: native (compiled hot path) or python.\n"
        text += "# TYPE rollwise_proxy_build_info gauge\n"
        text += f'rollwise_proxy_build_info{{build="{native.ACTIVE[0]}"}} 1\n'
        unrouted = self.state.unrouted
        text += "# HELP rollwise_proxy_unrouted_total Answers the proxy gave without routing, by status.\n"
        text += "# TYPE rollwise_proxy_unrouted_total counter\n"
        for status, count in sorted(unrouted.items()):
            text += f'rollwise_proxy_unrouted_total{{code="{status}"}} {count}\n'
        return text

    def handle_admin(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if method == "GET" and path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics_text().encode()
        if method == "GET" and path == "/stats":
            return json_answer(200, self.snapshot().to_dict())
        if method == "GET" and path == "/shadow":
            return json_answer(200, {rev: m.to_dict() for rev, m in self.snapshot().mirrors.items()})
        if path == "/routes":
            if method == "GET":
                table = self.table
                return json_answer(200, {"generation": self.generation, "table": table and table.to_dict()})
            if method in ("PUT", "POST"):
                return self._put_routes(body)
            return 405, "text/plain", b"use GET or PUT\n"
        return 404, "text/plain", f"no such admin path: {path}\n".encode()

    def _put_routes(self, body: bytes) -> tuple[int, str, bytes]:
        try:
            doc: Any = json.loads(body)
            generation = self.swap(RouteTable.from_dict(doc))
        except ValueError as exc:  # JSON errors and RouteTableError alike
            problems = exc.problems if isinstance(exc, RouteTableError) else [f"body is not JSON: {exc}"]
            return json_answer(400, {"error": "route table refused", "problems": problems})
        return json_answer(200, {"generation": generation})
