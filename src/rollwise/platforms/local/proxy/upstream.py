"""Keep-alive connections to upstream replicas, one pool per replica address.

An `UpstreamConnection` carries one request at a time for a `Sink` (the client's exchange, or a
mirror copy) and reports the answer through callbacks; it never parses more than one answer ahead
because the proxy never pipelines upstream. The client's exchange is a `FastSink`: an answer whose
head and end come in one read (the usual case) reaches it in one call, as received, once the
connection is back in its pool; the parser has no on_header nor on_headers_complete callback.
Pools outlive route tables: a swap keeps the warm connections of replicas that stay, so a weight
change costs no reconnects.

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


class FastSink(Sink, Protocol):
    """A sink that also takes a whole answer in one call (the client's exchange; a mirror copy is a
    plain Sink). The upstream connection then skips the head's own callback and the separate
    complete and flush steps in the usual case: an answer whose head and end came in one read."""

    req_done: bool
    buf: list[bytes]

    def upstream_whole(self, status: int, raw: bytes) -> None:
        """The whole answer, as received. The connection is back in its pool already."""
        ...

    def upstream_done(self) -> None:
        """The answer ended, its head already given to upstream_head: write what is left, finish.
        The connection is back in its pool already."""
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
        "fast",
        "in_head",
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
        # The sink again when it is a FastSink (see Exchange._start), else None.
        self.fast: FastSink | None = None
        # Bytes of the answer received while its head was not given to the sink yet. The head is
        # passed on as bytes rather than through callbacks: there is no on_header and no
        # on_headers_complete, and the head is found in these bytes once the parser has checked
        # it (at the answer's end if it comes in the same read, the usual case, else once the
        # read is parsed).
        self.raw = b""
        self.in_head = False
        self.closed = False
        self.done = True
        self.reused = False
        self.ticks = 0

    # --- used by sinks -------------------------------------------------------------------------

    def send(self, sink: Sink, data: bytes, fast: FastSink | None = None) -> None:
        """Start a request: `data` is at least its head. `fast`: the sink again if a FastSink."""
        self.sink = sink
        self.fast = fast
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
        fast = self.fast
        if self.in_head:
            self.raw = self.raw + data if self.raw else data
        elif not self.done:
            # The body is passed on as received, before the parser looks for its end: no Python
            # call per body piece, and chunked answers keep their framing.
            sink.upstream_body(data)
        try:
            self.parser.feed_data(data)
            if self.in_head and not self.done:
                self._head_only(sink)
        except httptools.HttpParserError as exc:
            self.abort()
            sink.upstream_failed("bad_response", f"invalid HTTP answer from {self.pool.label}: {exc}", False)
            return
        if fast is None or not self.done:
            # (A FastSink whose answer ended has written it already.)
            sink.upstream_flush()

    def _head_only(self, sink: Sink) -> None:
        """After a read: give the sink the answer's head if it is whole, the rest to come."""
        raw = self.raw
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            return  # the head goes on in the next read
        self.in_head = False
        self.raw = b""
        status = self.parser.get_status_code()
        if sink.is_head:
            # llhttp does not know the request was HEAD and waits for the body its head
            # announces: the answer is complete now, and the next one needs a fresh parser.
            self.done = True
            self._answer(sink, status, raw[: end + 4], self.parser.should_keep_alive())
            self.parser = httptools.HttpResponseParser(self)
            return
        sink.upstream_head(status, raw[: end + 2], raw[end + 4 :])

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

    def on_message_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200 and self.in_head:
            # 1xx interim answers (103 Early Hints, a stray 100) are not forwarded: the proxy
            # already answered Expect itself, and HTTP/1.0 clients must not see them.
            raw = self.raw
            self.raw = raw[raw.find(b"\r\n\r\n") + 4 :]
            return
        if self.done:
            return
        self.done = True
        sink = self.sink
        if sink is None:
            return
        keep_alive = parser.should_keep_alive()
        if self.in_head:
            # The whole answer came in this read, the usual case.
            self.in_head = False
            raw = self.raw
            self.raw = b""
            self._answer(sink, status, raw, keep_alive)
            return
        fast = self.fast
        if fast is not None:
            self._release(keep_alive and fast.req_done and not fast.buf)
            fast.upstream_done()
        else:
            sent_all = sink.upstream_complete()
            self._release(keep_alive and sent_all)

    def _answer(self, sink: Sink, status: int, raw: bytes, keep_alive: bool) -> None:
        """A whole answer (`raw`, as received): to the sink, and the connection back to its pool."""
        fast = self.fast
        if fast is not None:
            # The exchange is told once the connection is back in its pool, so that a request
            # pipelined behind it can have this connection. (_release, inlined.)
            pool = self.pool
            pool.busy.discard(self)
            self.sink = self.fast = None
            if (
                keep_alive
                and fast.req_done
                and not fast.buf
                and not self.closed
                and not pool.retired
                and len(pool.idle) < pool.max_idle
            ):
                self.ticks = 0
                self.reused = True
                pool.idle.append(self)
            else:
                self.close()
            fast.upstream_whole(status, raw)
            return
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            raise ValueError("answer head without CRLF CRLF")  # surfaces as bad_response
        sink.upstream_head(status, raw[: end + 2], raw[end + 4 :])
        sent_all = sink.upstream_complete()
        # The sink may still be flushed by data_received (it kept its own reference).
        self._release(keep_alive and sent_all)

    def _release(self, reusable: bool) -> None:
        # Pool.release, inlined.
        pool = self.pool
        pool.busy.discard(self)
        self.sink = None
        self.fast = None
        if reusable and not self.closed and not pool.retired and len(pool.idle) < pool.max_idle:
            self.ticks = 0
            self.reused = True
            pool.idle.append(self)
        else:
            self.close()
