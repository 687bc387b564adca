"""The client side of the proxy: one asyncio.Protocol per connection, httptools callbacks, and one
`Exchange` per request that carries it to an upstream and the answer back.

Nothing here awaits: every step is a callback, so a request costs no coroutine, no task and no
timer. Request headers stay a list of (name, value) pairs copied straight into the forwarded head;
no dict is built unless the route table has match rules on cookies or queries (see
table.RequestView). Answers are passed on as received: the head minus its hop-by-hop lines (found
by C-level searches, not a Python call per header), the body untouched, chunk framing included.
Writes are batched per read: a request's head and body go upstream in one write, an answer's
head and body go back in one write, because each write is a system call. The usual paths are
inlined where a call per request showed in the benchmark; the general methods stay beside them.

Behaviour at the edges, all tested:
- Expect: 100-continue is answered by the proxy itself (as nginx does) and not forwarded, so the
  client never waits on an upstream that ignores Expect; any other expectation gets 417.
- Upgrade (websocket, h2c) and CONNECT are refused with 501 and a plain body saying so, and the
  connection closes: the local proxy does not tunnel.
- Chunked request bodies go upstream chunked. Chunked answers pass through to HTTP/1.1 clients
  and are decoded for HTTP/1.0 clients (the connection then closes to end the body); answers
  ended by the upstream closing reach HTTP/1.1 clients chunked. HEAD answers never carry a body.
- Pipelined requests are answered in order; the connection stops reading while one waits."""

from __future__ import annotations

import asyncio
import re
import time
from bisect import bisect_left
from collections.abc import Sequence

import httptools

from rollwise.platforms.local.proxy.chunked import Dechunker
from rollwise.platforms.local.proxy.mirror import MirrorCopy
from rollwise.platforms.local.proxy.responses import CONTINUE, HOP_BY_HOP, plain
from rollwise.platforms.local.proxy.state import ProxyState
from rollwise.platforms.local.proxy.stats import BUCKETS
from rollwise.platforms.local.proxy.table import Backend
from rollwise.platforms.local.proxy.upstream import Headers, Pool, UpstreamConnection

_monotonic = time.monotonic

# Request headers the head builder treats specially; everything else is copied as received.
_REQUEST_SPECIAL = HOP_BY_HOP | {b"content-length", b"expect", b"x-forwarded-for"}
# A hop-by-hop line of an answer, found in the lower-cased head (llhttp refuses whitespace before
# the colon, so "\r\nname:" is exact). Transfer-Encoding is kept: chunked answers pass through
# with their framing.
_HOP_LINE = re.compile(rb"\r\n(?:connection|keep-alive|upgrade|proxy-connection):[^\r]*")


def _strip_lines(head: bytes, lower: bytes, marks: Sequence[bytes]) -> tuple[bytes, bytes]:
    """`head` (and its lower-cased twin) without the header lines starting with any of `marks`."""
    for mark in marks:
        at = lower.find(mark)
        while at >= 0:
            end = lower.find(b"\r\n", at + 2)
            if end < 0:
                end = len(lower)
            head = head[:at] + head[end:]
            lower = lower[:at] + lower[end:]
            at = lower.find(mark, at)
    return head, lower


_STATUS_FOR = {
    "connect_refused": 502,
    "connect_error": 502,
    "upstream_closed": 502,
    "bad_response": 502,
    "connect_timeout": 504,
    "read_timeout": 504,
    "no_upstream": 503,
}

# Reasons for which a client connection stops reading (bits, so they lift independently).
_PAUSE_PIPELINE = 1
_PAUSE_UPSTREAM = 2


class _HeadTooLarge(Exception):
    pass


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "active",
        "broken",
        "closed",
        "current",
        "head_size",
        "headers",
        "kick",
        "parser",
        "paused",
        "peer_xff",
        "state",
        "ticks",
        "transport",
        "url",
        "waiting",
        "xff_line",
    )

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: Headers = []
        self.head_size = 0
        # `active` is the exchange whose answer is being written; `waiting` are pipelined behind
        # it; `current` is the one whose request is being parsed (any of them).
        self.active: Exchange | None = None
        self.waiting: list[Exchange] = []
        self.current: Exchange | None = None
        # The exchange to flush upstream once the current read is parsed.
        self.kick: Exchange | None = None
        self.closed = False
        self.broken = False
        self.paused = 0
        self.ticks = 0
        self.peer_xff = b""
        self.xff_line = b""

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_xff = (peer[0] if peer else "unknown").encode()
        self.xff_line = b"x-forwarded-for: " + self.peer_xff + b"\r\n"
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        exchanges = ([self.active] if self.active is not None else []) + self.waiting
        self.active = None
        self.waiting = []
        self.current = None
        for ex in exchanges:
            ex.client_gone()

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return  # the stream could not be parsed; its refusal is queued and the connection closes
        self.ticks = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(501, "rollwise proxy: protocol upgrade (websocket, h2c) and CONNECT are not supported")
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, "rollwise proxy: request head too large")
            else:
                self._refuse(400, f"rollwise proxy: malformed request: {exc}")
        kick = self.kick
        if kick is not None:
            self.kick = None
            kick.flush_request()

    def pause_writing(self) -> None:
        # The client reads slower than the upstream answers: stop reading the upstream.
        ex = self.active
        if ex is not None and ex.conn is not None and ex.conn.transport is not None:
            ex.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        ex = self.active
        if ex is not None and ex.conn is not None and ex.conn.transport is not None:
            ex.conn.transport.resume_reading()

    # --- httptools callbacks -------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value)
        if self.head_size > self.state.settings.max_head_bytes:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        # Reset here rather than in on_message_begin: one Python call fewer per request.
        url = self.url
        headers = self.headers
        self.url = b""
        self.headers = []
        self.head_size = 0
        parser = self.parser
        if parser.should_upgrade():
            return  # refused once feed_data raises HttpParserUpgrade
        keep_alive = parser.should_keep_alive()
        http11 = parser.get_http_version() == "1.1"
        table = self.state.table
        if table is None or self.state.draining:
            msg = "no route table loaded yet" if table is None else "shutting down"
            self._enqueue(Exchange.canned(self, 503, f"rollwise proxy: {msg}", keep_alive, http11))
            return
        method = parser.get_method()
        # (url and headers are the locals taken above)
        parts = [method, b" ", url, b" HTTP/1.1\r\n"]
        length: bytes | None = None
        chunked = False
        expect: bytes | None = None
        xff: bytes | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in _REQUEST_SPECIAL:
                if lname == b"content-length":
                    length = value
                elif lname == b"transfer-encoding":
                    chunked = True
                elif lname == b"expect":
                    expect = value
                elif lname == b"x-forwarded-for":
                    xff = value if xff is None else xff + b", " + value
                continue
            parts.append(name + b": " + value + b"\r\n")
        parts.append(self.xff_line if xff is None else b"x-forwarded-for: " + xff + b", " + self.peer_xff + b"\r\n")
        if expect is not None and expect.lower() != b"100-continue":
            self._enqueue(
                Exchange.canned(self, 417, "rollwise proxy: only Expect: 100-continue is supported", False, http11)
            )
            return
        if table.inspects:
            backend, view, set_cookie = table.choose(headers, url)
        else:
            # Deck.draw, inlined.
            deck = table.deck
            i = deck.i
            if i >= deck.n:
                i = 0
            deck.i = i + 1
            backend, view, set_cookie = deck.cards[i], None, False
        mirror: MirrorCopy | None = None
        if table.mirror is not None and table.mirror.wants(view):
            mirror = MirrorCopy(self.state, table.mirror, method, url, b"".join(parts), length is not None or chunked)
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n\r\n")
        elif length is not None:
            parts.append(b"content-length: " + length + b"\r\n\r\n")
        else:
            parts.append(b"\r\n")
        ex = Exchange(self, backend, b"".join(parts), method == b"HEAD", keep_alive, http11)
        # Only what differs from the class defaults is set: this runs for every request.
        if chunked:
            ex.chunked = True
        if set_cookie:
            ex.set_cookie = True
        if expect is not None:
            ex.expect = True
        if mirror is not None:
            ex.mirror = mirror
        if self.active is None:
            # _enqueue, inlined for the usual case of no request ahead on this connection.
            self.active = self.current = self.kick = ex
            if ex.expect:
                ex.activate()
        else:
            self._enqueue(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.current
        if ex is not None:
            ex.request_body(body)
            if ex is self.active:
                self.kick = ex

    def on_message_complete(self) -> None:
        ex = self.current
        if ex is not None:
            self.current = None
            ex.request_done()
            if ex is self.active:
                self.kick = ex

    # --- exchanges -----------------------------------------------------------------------------

    def _enqueue(self, ex: Exchange) -> None:
        self.current = ex
        if self.active is None:
            self.active = ex
            ex.activate()
            self.kick = ex
        else:
            self.waiting.append(ex)
            self.pause(_PAUSE_PIPELINE)

    def _refuse(self, status: int, message: str) -> None:
        """Answer (in turn) and close: after a parse error or an upgrade the stream cannot be read on."""
        self.broken = True
        self.current = None
        ex = Exchange.canned(self, status, message, False, True)
        ex.req_done = True
        self._enqueue(ex)
        self.current = None
        self.pause(_PAUSE_PIPELINE)

    def finished(self, ex: Exchange) -> None:
        """`ex` has written its whole answer and read its whole request."""
        if ex is not self.active:
            return
        self.active = None
        if ex.close_after:
            self.closed = True
            self.transport.close()  # after what is buffered has been written
            return
        if self.waiting:
            nxt = self.waiting.pop(0)
            self.active = nxt
            if not self.waiting:
                self.resume(_PAUSE_PIPELINE)
            nxt.activate()
            nxt.flush_request()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        was = self.paused
        self.paused &= ~reason
        if was and not self.paused and not self.closed:
            self.transport.resume_reading()

    def tick(self, seconds: float) -> None:
        """Close a connection idle (no request in flight) for longer than the client idle timeout."""
        if self.active is None and not self.closed:
            self.ticks += 1
            if self.ticks * seconds >= self.state.settings.client_idle_timeout:
                self.closed = True
                self.transport.close()

    def close_if_idle(self) -> None:
        if self.active is None and not self.closed:
            self.closed = True
            self.transport.close()


class Exchange:
    """One request and its answer. Also the `Sink` its upstream connection reports to.

    No __slots__: the many rarely-changed flags below are class-level defaults, so creating an
    exchange sets only what differs per request."""

    conn: UpstreamConnection | None = None
    connecting = False
    chunked = False
    expect = False
    set_cookie = False
    mirror: MirrorCopy | None = None
    canned_answer: bytes | None = None
    req_done = False
    resp_done = False
    resp_started = False
    finished_ = False
    rechunk = False
    until_close = False
    retried = False
    replayed = False
    error = False
    status = 0
    # The request as first written, when that was all of it: what a replay sends again.
    replay: bytes | None = None
    dechunker: Dechunker | None = None

    def __init__(
        self,
        client: ClientConnection,
        backend: Backend | None,
        head: bytes,
        is_head: bool,
        keep_alive: bool,
        http11: bool,
    ) -> None:
        self.client = client
        self.backend = backend
        self.start = _monotonic()
        self.is_head = is_head
        self.close_after = not keep_alive
        self.http11 = http11
        self.buf = [head]  # request bytes not yet written upstream
        self.out: list[bytes] = []  # answer bytes not yet written to the client

    @property
    def timeout(self) -> float:
        # Read by the timeout sweep only, so not stored per request.
        return self.client.state.settings.read_timeout

    @classmethod
    def canned(cls, client: ClientConnection, status: int, message: str, keep_alive: bool, http11: bool) -> Exchange:
        """An answer the proxy gives itself, in turn with the connection's other answers."""
        ex = cls(client, None, b"", False, keep_alive, http11)
        ex.buf = []
        ex.status = status
        ex.canned_answer = plain(status, message, close=not keep_alive)
        unrouted = client.state.unrouted
        unrouted[status] = unrouted.get(status, 0) + 1
        return ex

    # --- request side (called by the client connection) ----------------------------------------

    def activate(self) -> None:
        if self.expect and not self.req_done:
            self.client.write(CONTINUE)

    def request_body(self, data: bytes) -> None:
        if self.resp_done or self.canned_answer is not None:
            return  # answered already (e.g. an early error): the rest of the body is discarded
        if self.chunked:
            self.buf += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.buf.append(data)
        if self.mirror is not None:
            self.mirror.request_body(data)

    def request_done(self) -> None:
        self.req_done = True
        if self.canned_answer is None and not self.resp_done and self.chunked:
            self.buf.append(b"0\r\n\r\n")
        mirror = self.mirror
        if mirror is not None:
            mirror.request_done()
            if not mirror.launched:
                self.mirror = None  # dropped: no need to capture the primary answer

    def flush_request(self) -> None:
        if self.conn is None and not (self.connecting or self.finished_ or self.resp_done or self.canned_answer):
            self._start(fresh=False)  # the usual first flush of a request
            return
        if self.finished_:
            return
        if self.canned_answer is not None:
            if not self.resp_done:
                self.resp_done = True
                self.client.write(self.canned_answer)
            self._maybe_finish()
            return
        if self.resp_done:
            self._maybe_finish()
            return
        conn = self.conn
        if conn is not None:
            if self.buf:
                data = b"".join(self.buf)
                self.buf = []
                self.replay = None  # written in pieces: not replayed
                conn.write(data)
        elif not self.connecting:
            self._start(fresh=False)

    def _start(self, fresh: bool, pool: Pool | None = None) -> None:
        backend = self.backend
        assert backend is not None
        if pool is None:
            # Backend.pick's usual case, inlined: the next replica in turn is not ejected.
            pools = backend.pools
            rr = backend.rr
            if pools and pools[rr].down_until <= self.start:
                pool = pools[rr]
                backend.rr = rr + 1 if rr + 1 < len(pools) else 0
            else:
                pool = backend.pick(self.start)
            if pool is None:
                self._fail("no_upstream", f"revision {backend.name!r} has no ready replica")
                return
        if not fresh:
            # Pool.acquire and _use, inlined: this runs for every request.
            idle = pool.idle
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    self.conn = conn
                    buf = self.buf
                    data = buf[0] if len(buf) == 1 else b"".join(buf)
                    self.buf = []
                    if self.req_done:
                        self.replay = data  # the whole request: kept (by reference) for a replay
                    conn.send(self, data)
                    return
        self.connecting = True
        pool.connect(self)

    def _use(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        buf = self.buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        self.buf = []
        if self.req_done:
            self.replay = data  # the whole request: kept (by reference) for a replay
        conn.send(self, data)

    def client_gone(self) -> None:
        self.finished_ = True
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()  # its answer would have nowhere to go
        if self.mirror is not None:
            self.mirror.primary_failed()

    # --- Sink: upstream side -------------------------------------------------------------------

    def upstream_connected(self, conn: UpstreamConnection) -> None:
        self.connecting = False
        if self.finished_ or self.resp_done:
            conn.pool.release(conn, True)
            return
        self._use(conn)

    def upstream_connect_failed(self, pool: Pool, kind: str, detail: str) -> None:
        self.connecting = False
        if self.finished_ or self.resp_done:
            return
        settings = self.client.state.settings
        now = _monotonic()
        backend = self.backend
        assert backend is not None
        if kind == "connect_refused":
            pool.down_until = now + settings.eject_seconds
            if not self.retried:
                # Nothing reached the refusing replica, so the request can go to another.
                alt = backend.pick(now, exclude=pool)
                if alt is not None:
                    self.retried = True
                    backend.stats.retries += 1
                    self._start(fresh=False, pool=alt)
                    return
        self._fail(kind, detail)

    def upstream_head(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        # llhttp refuses whitespace before a colon, so the lower-cased head can be searched for
        # "\r\nname:" exactly; C-level searches cost less here than a Python call per header.
        lower = head.lower()
        m = _HOP_LINE.search(lower)
        while m is not None:
            start, end = m.span()
            head = head[:start] + head[end:]
            lower = lower[:start] + lower[end:]
            m = _HOP_LINE.search(lower, start)
        if head[5:9] != b"1.1 ":
            head = b"HTTP/1.1" + head[8:]  # the client talks to us, in 1.1, whatever the upstream spoke
        framed = b"\r\ncontent-length:" in lower or self.is_head or status == 204 or status == 304
        if framed and self.http11 and not (self.close_after or self.set_cookie or self.mirror is not None):
            # The usual answer: head and body go out as received, minus hop-by-hop lines.
            self.out = [head, b"\r\n", body] if body else [head, b"\r\n"]
            return
        self._head_slow(status, head, lower, body, framed)

    def _head_slow(self, status: int, head: bytes, lower: bytes, body: bytes, framed: bool) -> None:
        out = [head]
        if not framed:
            if b"\r\ntransfer-encoding:" in lower:
                if not self.http11:
                    # An HTTP/1.0 client cannot read chunks: decode, and end the body by closing.
                    out[0] = _strip_lines(head, lower, (b"\r\ntransfer-encoding:",))[0]
                    self.dechunker = Dechunker()
                    self.close_after = True
            elif self.http11:
                # The upstream ends the body by closing; the client gets chunks and keeps its connection.
                self.until_close = True
                self.rechunk = True
                out.append(b"transfer-encoding: chunked\r\n")
            else:
                self.until_close = True
                self.close_after = True
        if self.close_after:
            out.append(b"connection: close\r\n")
        elif not self.http11:
            out.append(b"connection: keep-alive\r\n")
        if self.set_cookie:
            assert self.backend is not None
            out.append(self.backend.set_cookie)
        out.append(b"\r\n")
        self.out = out
        if self.mirror is not None:
            self.mirror.primary_head(status, head)
        if body:
            self.upstream_body(body)

    def upstream_body(self, data: bytes) -> None:
        if self.rechunk:
            self.out += (b"%x\r\n" % len(data), data, b"\r\n")
        elif self.dechunker is not None:
            self.out.append(self.dechunker.feed(data))
        else:
            self.out.append(data)
        if self.mirror is not None:
            self.mirror.primary_body(data)

    def upstream_complete(self) -> bool:
        if self.rechunk:
            self.out.append(b"0\r\n\r\n")
        self.resp_done = True
        self.conn = None
        if self.mirror is not None:
            self.mirror.primary_complete()
        return self.req_done and not self.buf

    def upstream_flush(self) -> None:
        out = self.out
        client = self.client
        if out:
            self.out = []
            self.resp_started = True
            if not client.closed:
                client.transport.write(b"".join(out))
        if self.resp_done and self.req_done and not self.finished_:
            # _maybe_finish's usual case, inlined: this runs for every answer.
            self.finished_ = True
            if not self.error:
                stats = self.backend.stats  # type: ignore[union-attr]
                elapsed = _monotonic() - self.start
                stats.classes[self.status // 100] += 1
                stats.buckets[bisect_left(BUCKETS, elapsed)] += 1
                stats.latency_sum += elapsed
            client.finished(self)
        elif self.resp_done:
            self._maybe_finish()

    def upstream_failed(self, kind: str, detail: str, replayable: bool) -> None:
        self.conn = None
        if self.finished_ or self.resp_done:
            return
        if kind == "upstream_closed" and self.until_close and self.status:
            # An answer framed by the end of the connection has just ended.
            self.upstream_complete()
            self.upstream_flush()
            return
        if replayable and self.replay is not None and not self.replayed and not self.resp_started:
            # A pooled connection the upstream had closed while idle: send again, on a new one.
            self.replayed = True
            self.buf = [self.replay]
            self._start(fresh=True)
            return
        self._fail(kind, detail)

    def upstream_writable(self, writable: bool) -> None:
        if writable:
            self.client.resume(_PAUSE_UPSTREAM)
        else:
            self.client.pause(_PAUSE_UPSTREAM)

    # --- endings -------------------------------------------------------------------------------

    def _fail(self, kind: str, detail: str) -> None:
        backend = self.backend
        assert backend is not None
        backend.stats.error(kind)
        self.error = True
        if self.mirror is not None:
            self.mirror.primary_failed()
        if self.resp_started:
            # Part of the answer is out: the client can only learn of the failure by a cut.
            self.resp_done = True
            self.close_after = True
            self.client.closed = True
            self.client.transport.abort()
            self._maybe_finish()
            return
        status = _STATUS_FOR.get(kind, 502)
        self.status = status
        self.out = []
        if not self.req_done:
            self.close_after = True  # the rest of the request body will not be read
        self.resp_done = True
        self.resp_started = True
        message = f"rollwise proxy: revision {backend.name!r} failed ({kind}): {detail}"
        self.client.write(plain(status, message, close=self.close_after))
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.finished_ or not self.resp_done or not (self.req_done or self.close_after):
            return
        self.finished_ = True
        backend = self.backend
        if not self.error and backend is not None:
            # RevisionStats.observe, inlined: this runs for every answer.
            stats = backend.stats
            elapsed = _monotonic() - self.start
            stats.classes[self.status // 100] += 1
            stats.buckets[bisect_left(BUCKETS, elapsed)] += 1
            stats.latency_sum += elapsed
        self.client.finished(self)
