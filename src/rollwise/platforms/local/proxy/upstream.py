"""Keep-alive connections to upstream replicas, one pool per replica address.

An `UpstreamConnection` carries one request at a time for a `Sink` (the client's exchange, or a
mirror copy) and reports the answer through callbacks; it never parses more than one answer ahead
because the proxy never pipelines upstream. Pools outlive route tables: a swap keeps the warm
connections of replicas that stay, so a weight change costs no reconnects.

Timeouts are counted in ticks of one sweeper (see server.py) rather than a timer per request: a
timer per request costs more than the rest of the bookkeeping."""

from __future__ import annotations

import asyncio
from typing import Protocol

import httptools

from rollwise.platforms.local.proxy.settings import ProxySettings

Headers = list[tuple[bytes, bytes]]


class Sink(Protocol):
    """What an upstream connection reports to. `timeout` is the longest silence it accepts while
    waiting for the answer; `is_head` tells that the answer has no body whatever its headers say."""

    is_head: bool

    @property
    def timeout(self) -> float: ...

    def upstream_connected(self, conn: UpstreamConnection) -> None: ...

    def upstream_connect_failed(self, pool: Pool, kind: str, detail: str) -> None: ...

    def upstream_head(self, status: int, head: bytes, body: bytes) -> None:
        """`head`: the status line and header lines as received, each ending in CRLF, without the
        blank line. `body`: the first body bytes, received with the head (often all of them)."""
        ...

    def upstream_body(self, data: bytes) -> None:
        """Body bytes as received, framing included (chunk sizes stay in a chunked answer)."""
        ...

    def upstream_complete(self) -> bool:
        """The answer ended; return whether the request was fully sent (else the connection is in
        an unknown state and is closed rather than pooled)."""
        ...

    def upstream_flush(self) -> None:
        """End of one batch of received bytes: the moment to write what the batch produced."""
        ...

    def upstream_failed(self, kind: str, detail: str, replayable: bool) -> None:
        """The connection closed or timed out before the answer ended. `replayable`: it was a reused
        keep-alive connection that answered nothing, so the request may safely go again."""
        ...

    def upstream_writable(self, writable: bool) -> None:
        """Flow control: stop (False) or resume (True) feeding request bytes."""
        ...


class Pool:
    __slots__ = (
        "address",
        "busy",
        "connecting",
        "down_until",
        "host",
        "idle",
        "label",
        "loop",
        "max_idle",
        "port",
        "retired",
        "settings",
    )

    def __init__(self, address: tuple[str, int], loop: asyncio.AbstractEventLoop, settings: ProxySettings) -> None:
        self.address = address
        self.host, self.port = address
        self.label = f"{self.host}:{self.port}"
        self.loop = loop
        self.settings = settings
        self.max_idle = settings.max_idle_per_upstream
        self.idle: list[UpstreamConnection] = []
        self.busy: set[UpstreamConnection] = set()
        self.connecting: set[asyncio.Task[None]] = set()
        self.down_until = 0.0
        # Set when the replica left the route table: its connections close instead of being pooled.
        self.retired = False

    def acquire(self) -> UpstreamConnection | None:
        """A warm idle connection, most recently used first (the likeliest to still be open)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def connect(self, sink: Sink) -> None:
        task = self.loop.create_task(self._connect(sink))
        # The loop keeps only weak references to tasks.
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect(self, sink: Sink) -> None:
        timeout = self.settings.connect_timeout
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port), timeout
            )
        except ConnectionRefusedError:
            sink.upstream_connect_failed(self, "connect_refused", f"connection refused by {self.label}")
        except TimeoutError:
            sink.upstream_connect_failed(self, "connect_timeout", f"no connection to {self.label} within {timeout:g}s")
        except OSError as exc:
            sink.upstream_connect_failed(
                self, "connect_error", f"cannot connect to {self.label}: {exc.strerror or exc}"
            )
        else:
            sink.upstream_connected(conn)

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        self.busy.discard(conn)
        conn.sink = None
        if reusable and not conn.closed and not self.retired and len(self.idle) < self.max_idle:
            conn.ticks = 0
            conn.reused = True
            self.idle.append(conn)
        else:
            conn.close()

    def tick(self, seconds: float) -> None:
        """One sweep: time out silent upstreams and close connections idle too long."""
        for conn in list(self.busy):
            conn.ticks += 1
            sink = conn.sink
            if sink is not None and conn.ticks * seconds >= sink.timeout:
                conn.time_out()
        if self.idle:
            limit = self.settings.upstream_idle_timeout
            keep: list[UpstreamConnection] = []
            for conn in self.idle:
                conn.ticks += 1
                if conn.closed:
                    continue
                if conn.ticks * seconds >= limit:
                    conn.close()
                else:
                    keep.append(conn)
            self.idle = keep

    def close_idle(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle = []


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "closed",
        "done",
        "in_head",
        "interim",
        "parser",
        "pool",
        "raw",
        "reused",
        "sink",
        "ticks",
        "transport",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        # Bytes of the answer received while its head is incomplete. The head is passed on as
        # bytes rather than through per-header callbacks: one regex pass over it costs less than
        # a Python call per header.
        self.raw = b""
        self.in_head = False
        self.closed = False
        self.done = True
        self.interim = False
        self.reused = False
        self.ticks = 0

    # --- used by sinks -------------------------------------------------------------------------

    def send(self, sink: Sink, data: bytes) -> None:
        """Start a request: `data` is at least its head."""
        self.sink = sink
        self.done = False
        self.ticks = 0
        self.in_head = True
        self.pool.busy.add(self)
        self.transport.write(data)  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop a connection whose answer nobody will read, with no lingering close."""
        self.closed = True
        self.pool.busy.discard(self)
        self.sink = None
        if self.transport is not None:
            self.transport.abort()

    def time_out(self) -> None:
        sink = self.sink
        self.abort()
        if sink is not None:
            sink.upstream_failed("read_timeout", f"no answer from {self.pool.label} within {sink.timeout:g}s", False)

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:
            # An idle keep-alive connection must stay silent; anything else is a broken stream.
            self.close()
            return
        self.ticks = 0
        if self.in_head:
            self.raw = self.raw + data if self.raw else data
        elif not self.done:
            # The body is passed on as received, before the parser looks for its end: no Python
            # call per body piece, and chunked answers keep their framing.
            sink.upstream_body(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort()
            sink.upstream_failed("bad_response", f"invalid HTTP answer from {self.pool.label}: {exc}", False)
        sink.upstream_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.busy.discard(self)
        sink = self.sink
        if sink is not None and not self.done:
            self.sink = None
            sink.upstream_failed(
                "upstream_closed",
                f"{self.pool.label} closed the connection before answering",
                self.reused and self.in_head and not self.raw,  # nothing of an answer came
            )

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(False)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_writable(True)

    # --- httptools callbacks -------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        raw = self.raw
        end = raw.find(b"\r\n\r\n")
        head = raw[: end + 2]
        self.raw = raw[end + 4 :]
        status = self.parser.get_status_code()
        if status < 200:
            # 1xx interim answers (103 Early Hints, a stray 100) are not forwarded: the proxy
            # already answered Expect itself, and HTTP/1.0 clients must not see them.
            self.interim = True
            return
        self.in_head = False
        self.raw = b""
        sink = self.sink
        if sink is None:
            return
        if end < 0:
            raise ValueError("answer head without CRLF CRLF")  # surfaces as bad_response
        if sink.is_head or status == 204 or status == 304:
            sink.upstream_head(status, head, b"")
            # llhttp does not know the request was HEAD and would wait for the Content-Length it
            # announces; the answer is complete now, and the next one needs a fresh parser.
            self._complete()
            self.parser = httptools.HttpResponseParser(self)
            return
        sink.upstream_head(status, head, raw[end + 4 :])

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.done:
            return
        # _complete, inlined: this runs for every answer.
        self.done = True
        sink = self.sink
        if sink is None:
            return
        keep_alive = self.parser.should_keep_alive()
        sent_all = sink.upstream_complete()
        # Pool.release's usual case, inlined.
        pool = self.pool
        pool.busy.discard(self)
        self.sink = None
        if keep_alive and sent_all and not self.closed and not pool.retired and len(pool.idle) < pool.max_idle:
            self.ticks = 0
            self.reused = True
            pool.idle.append(self)
        else:
            self.close()

    def _complete(self) -> None:
        self.done = True
        sink = self.sink
        keep_alive = self.parser.should_keep_alive()
        if sink is None:
            return
        sent_all = sink.upstream_complete()
        # The sink may still be flushed by data_received (it kept its own reference).
        self.pool.release(self, keep_alive and sent_all)
