"""The client side of the proxy: one asyncio.Protocol per connection, httptools callbacks, and one
`Exchange` per request that carries it to an upstream and the answer back.

Nothing here awaits: every step is a callback, so a request costs no coroutine, no task and no
timer. Request heads are taken as raw bytes, as answer heads are: llhttp checks the head (there is
no on_url and no on_header callback), then the proxy finds it in the bytes it received, lower-cases
it once and runs one regex search for the few lines it acts on itself (Expect, X-Forwarded-For,
hop-by-hop lines, the headers the route table matches on). When there is none, the usual case, the
head goes upstream as received plus an X-Forwarded-For line: one concatenation, no Python step per
header. No dict is built unless the route table matches on cookies or queries (see
table.RequestView). Answers are passed on as received: the head minus its hop-by-hop lines (found
by C-level searches too), the body untouched, chunk framing included. Writes are batched: a
request's head and body go upstream in one write, an answer's head and body go back in one write,
because each write is a system call. The usual paths are inlined where a call per request showed in
the benchmark; the general methods stay beside them.

Behaviour at the edges, all tested:
- Expect: 100-continue is answered by the proxy itself (as nginx does) and not forwarded, so the
  client never waits on an upstream that ignores Expect; any other expectation gets 417.
- Upgrade (websocket, h2c) and CONNECT are refused with 501 and a plain body saying so, and the
  connection closes: the local proxy does not tunnel.
- Hop-by-hop request lines (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and the
  names a Connection header lists) are not forwarded. Content-Length and Transfer-Encoding are, as
  received: a chunked request body is re-framed chunk by chunk, so its codings stay true.
- Chunked answers pass through to HTTP/1.1 clients and are decoded for HTTP/1.0 clients (the
  connection then closes to end the body); answers ended by the upstream closing reach HTTP/1.1
  clients chunked. HEAD answers never carry a body.
- Pipelined requests are answered in order; the connection stops reading while one waits. One
  routed under a table swapped out before its turn came is routed again on the table in force,
  and a retry after a refused connection also uses the table in force: a replica that left the
  table may have stopped."""

from __future__ import annotations

import asyncio
import re
import time
from bisect import bisect_left
from collections.abc import Sequence

import httptools

from rollwise.platforms.local.proxy.chunked import ChunkedEnd, Dechunker
from rollwise.platforms.local.proxy.mirror import MirrorCopy
from rollwise.platforms.local.proxy.responses import CONTINUE, HOP_BY_HOP, plain
from rollwise.platforms.local.proxy.state import ProxyState
from rollwise.platforms.local.proxy.stats import BUCKETS
from rollwise.platforms.local.proxy.table import DEFAULT_SCAN, LINE_NAMES, Backend, Headers, RequestView
from rollwise.platforms.local.proxy.upstream import Pool, UpstreamConnection

_monotonic = time.monotonic

# A hop-by-hop line of an answer, found in the lower-cased head (llhttp refuses whitespace before
# the colon, so "\r\nname:" is exact). Transfer-Encoding is kept: chunked answers pass through
# with their framing.
_HOP_LINE = re.compile(rb"\r\n(?:connection|keep-alive|upgrade|proxy-connection):[^\r]*")
# The same, or the blank line that ends the head, whichever comes first.
_ANSWER_SCAN = re.compile(rb"\r\n(?:\r\n|(?:connection|keep-alive|upgrade|proxy-connection):[^\r]*)")
# Names a Connection header may list that are not stripped for it: "close" names no header, and
# the framing and Host lines must reach the upstream whatever the client says (the other
# hop-by-hop lines are stripped anyway).
_NOT_LISTABLE = HOP_BY_HOP | {b"close", b"content-length", b"host"}
# The request lines a mirror's copy goes without: it is framed anew (see MirrorCopy).
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


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


def _without(head: bytes, line: bytes, line_end: int, cuts: Sequence[tuple[int, int]]) -> bytes:
    """`head` without the spans `cuts` (sorted, each after `line_end`), its request line replaced
    by `line` unless that is empty."""
    parts = [line or head[:line_end]]
    pos = line_end
    for start, end in cuts:
        if start >= pos:
            parts.append(head[pos:start])
            pos = end
    parts.append(head[pos:])
    return b"".join(parts)


def _lines_named(lower: bytes, line_end: int, names: frozenset[bytes]) -> list[tuple[int, int]]:
    """The spans (from the CRLF before the line to the end of the line) of the header lines of the
    lower-cased head `lower` whose name is in `names`."""
    out: list[tuple[int, int]] = []
    pos = line_end
    size = len(lower)
    while pos < size:
        eol = lower.find(b"\r\n", pos + 2)
        if eol < 0:
            eol = size
        if lower[pos + 2 : lower.find(b":", pos + 2, eol)] in names:
            out.append((pos, eol))
        pos = eol
    return out


def _header_pairs(head: bytes, line_end: int) -> Headers:
    """(name, value) per header line, as llhttp would report them (the value without the blanks
    that lead it)."""
    if line_end >= len(head):
        return []
    pairs: Headers = []
    for line in head[line_end + 2 :].split(b"\r\n"):
        name, _, value = line.partition(b":")
        pairs.append((name, value.lstrip(b" \t")))
    return pairs


# A request line the proxy forwards as received: one space either side of the URL, HTTP/1.1.
_PLAIN_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/1\.1(?:\r\n|$)")

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


class _Desync(Exception):
    """The client side lost track of where a request head starts in the raw bytes. Unreachable
    while llhttp is strict (see ChunkedEnd); answered as a malformed request, never guessed at."""


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "active",
        "body_at",
        "body_seen",
        "broken",
        "buf",
        "closed",
        "current",
        "kick",
        "max_head",
        "parser",
        "paused",
        "peer_xff",
        "pend",
        "skipper",
        "spare",
        "start",
        "state",
        "tail",
        "ticks",
        "transport",
        "waiting",
        "xff_line",
    )

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.max_head = state.settings.max_head_bytes
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        # Where request heads are in the raw bytes. `buf` is the read being parsed, after `pend`
        # (what the parser had of it already: a head cut by the end of the previous read, or the
        # start of a chunked body before its first size line was whole). `start` is where the
        # next head starts in `buf`, or -1 while a request is being read; `body_at` is where the
        # current request's body starts in `buf` (0 when in an earlier read) and `body_seen` how
        # many of its bytes `buf` held; `skipper` follows a chunked body's framing.
        self.buf = b""
        self.pend = b""
        self.start = 0
        self.body_at = 0
        self.body_seen = 0
        self.skipper: ChunkedEnd | None = None
        # `active` is the exchange whose answer is being written; `waiting` are pipelined behind
        # it; `current` is the one whose request is being read (any of them).
        self.active: Exchange | None = None
        self.waiting: list[Exchange] = []
        self.current: Exchange | None = None
        # The exchange to flush upstream once the current read is parsed (part of a body came).
        self.kick: Exchange | None = None
        # An exchange done with, for the next request to reuse (see Exchange.upstream_whole).
        self.spare: Exchange | None = None
        self.closed = False
        self.broken = False
        self.paused = 0
        self.ticks = 0
        self.peer_xff = b""
        self.xff_line = b""
        self.tail = b""

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer_xff = (peer[0] if peer else "unknown").encode()
        # Heads are forwarded without their last CRLF: this line ends them (and `tail` the head).
        self.xff_line = b"\r\nx-forwarded-for: " + self.peer_xff + b"\r\n"
        self.tail = self.xff_line + b"\r\n"
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
        pend = self.pend
        if pend:
            self.pend = b""
            buf = self.buf = pend + data
        else:
            buf = self.buf = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(501, "rollwise proxy: protocol upgrade (websocket, h2c) and CONNECT are not supported")
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, "rollwise proxy: request head too large")
            else:
                self._refuse(400, f"rollwise proxy: malformed request: {exc}")
        else:
            start = self.start
            if start >= 0:
                # Between requests, or in a head the next read completes.
                if start < len(buf):
                    pend = self.pend = buf[start:]
                    if len(pend) > self.max_head:
                        self._refuse(431, "rollwise proxy: request head too large")
                self.start = 0
            else:
                # In a request's body.
                skipper = self.skipper
                if skipper is not None:
                    if skipper.skip(buf, self.body_at) >= 0:
                        # The end of the body was seen but llhttp did not end the request: unreachable
                        # while both agree, and never guessed at.
                        self._refuse(400, "rollwise proxy: malformed request: chunked body out of step")
                    elif len(skipper.line) > self.max_head:
                        self._refuse(400, "rollwise proxy: malformed request: chunk line too long")
                elif self.body_at + self.body_seen < len(buf):
                    pend = self.pend = buf[self.body_at + self.body_seen :]  # a first chunk size line, cut
                    if len(pend) > self.max_head:
                        self._refuse(400, "rollwise proxy: malformed request: chunk line too long")
                self.body_at = 0
                self.body_seen = 0
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

    def on_headers_complete(self) -> None:
        buf = self.buf
        start = self.start
        if start < 0:
            raise _Desync
        c = buf[start]
        while c == 13 or c == 10:  # empty lines before a request line, which llhttp skips
            start += 1
            c = buf[start]
        state = self.state
        table = state.table
        # The head lower-cased (with what follows it in the read, when that is short: one pass
        # fewer than finding its end first), then one search for both the lines the proxy acts on
        # and the head's end, whichever comes first.
        if len(buf) - start <= 2048:
            lower = (buf[start:] if start else buf).lower()
        else:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                raise _Desync
            lower = buf[start : end + 4].lower()
        m = (DEFAULT_SCAN if table is None else table.head_scan).search(lower)
        if m is None:
            raise _Desync
        size = m.start()
        plain = lower[size + 2] == 13  # the blank line that ends the head, before any line acted on
        if not plain:
            size = lower.find(b"\r\n\r\n", size)
            if size < 0:
                raise _Desync
        end = start + size
        self.start = -1
        self.body_at = end + 4
        self.body_seen = 0
        if size > self.max_head:
            raise _HeadTooLarge
        parser = self.parser
        if parser.should_upgrade():
            return  # refused once feed_data raises HttpParserUpgrade
        # The request line and header lines, without the last CRLF (nor the blank line).
        head = buf[start:end]
        if not plain or table is None or not table.plain or state.draining or _PLAIN_LINE.match(head) is None:
            self._head(head, lower[:size], parser.should_keep_alive())
            return
        # The usual request: HTTP/1.1 with one space either side of the URL, and no line the
        # proxy acts on (no Expect, no Connection nor other hop-by-hop line, none a match rule
        # tests), no mirror; so it keeps the connection alive. It goes upstream as received plus
        # X-Forwarded-For, once read whole (see on_message_complete).
        deck = table.deck  # Deck.draw, inlined
        i = deck.i
        if i >= deck.n:
            i = 0
        deck.i = i + 1
        is_head = head[4] == 32 and head[0] == 72  # HEAD is the one method of 4 letters starting with H
        ex = self.spare
        if ex is None:
            ex = Exchange(self, deck.cards[i], head + self.tail, is_head, True, True)
        else:
            # The connection's previous exchange, finished the usual way: only what a request
            # changes is set again (see Exchange.upstream_whole).
            self.spare = None
            ex.backend = deck.cards[i]
            ex.start = _monotonic()
            ex.is_head = is_head
            ex.buf = [head + self.tail]
            ex.status = 0
            ex.req_done = ex.resp_done = ex.resp_started = ex.finished_ = ex.chunked = False
            ex.replay = None
        self.current = ex
        if self.active is None:
            self.active = ex
        else:
            self.waiting.append(ex)
            self.pause(_PAUSE_PIPELINE)

    def _head(self, head: bytes, lower: bytes, keep_alive: bool) -> None:
        """Any request head: the general case of on_headers_complete."""
        line_end = lower.find(b"\r\n")
        if line_end < 0:
            line_end = len(head)
        state = self.state
        table = state.table
        http11 = head.endswith(b" HTTP/1.1", 0, line_end)
        if table is None or state.draining:
            msg = "no route table loaded yet" if table is None else "shutting down"
            self._enqueue(Exchange.canned(self, 503, f"rollwise proxy: {msg}", keep_alive, http11))
            return
        sp = head.find(b" ")
        method = head[:sp]
        line = b""  # a rewritten request line, if the received one is not kept
        if http11 and head[line_end - 10] != 32 and head[sp + 1] != 32:
            url = head[sp + 1 : line_end - 9]
        else:
            # HTTP/1.0 (or 0.9, or 2.0 in an HTTP/1 request line), or more than one space either
            # side of the URL: upstream it is HTTP/1.1, as the proxy speaks it.
            url = head[:line_end].split()[1]
            line = method + b" " + url + b" HTTP/1.1"
        route_hit = False
        expect: bytes | None = None
        xff: bytes | None = None
        cuts: list[tuple[int, int]] = []  # header lines not forwarded, as spans of `head`
        listed: set[bytes] = set()  # further names the Connection header marks hop-by-hop
        for m in table.head_scan.finditer(lower, line_end):
            at = m.start()
            name = lower[at + 2 : m.end() - 1]
            if name not in LINE_NAMES:
                route_hit = True  # a header a match rule tests: forwarded
                continue
            eol = lower.find(b"\r\n", at + 2)
            if eol < 0:
                eol = len(lower)
            cuts.append((at, eol))
            value = head[m.end() : eol].lstrip(b" \t")  # as llhttp reports it
            if name == b"expect":
                expect = value
            elif name == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
            elif name == b"connection":
                for token in value.lower().split(b","):
                    token = token.strip(b" \t")
                    if token and token not in _NOT_LISTABLE:
                        listed.add(token)
        if listed:
            cuts = sorted(cuts + _lines_named(lower, line_end, frozenset(listed)))
            if b"x-forwarded-for" in listed:
                xff = None
        if expect is not None and expect.lower() != b"100-continue":
            self._enqueue(
                Exchange.canned(self, 417, "rollwise proxy: only Expect: 100-continue is supported", False, http11)
            )
            return
        xff_line = self.xff_line if xff is None else b"\r\nx-forwarded-for: " + xff + b", " + self.peer_xff + b"\r\n"
        forwarded = _without(head, line, line_end, cuts) + xff_line
        view: RequestView | None = None
        set_cookie = False
        if table.inspects and (route_hit or table.header_names is None):
            backend, view, set_cookie = table.choose(_header_pairs(head, line_end), url)
        else:
            backend = table.deck.draw()
        mirror: MirrorCopy | None = None
        if table.mirror is not None and table.mirror.wants(view):
            framing = _lines_named(lower, line_end, _FRAMING)
            copy_head = _without(head, line, line_end, sorted(cuts + framing)) + xff_line if framing else forwarded
            mirror = MirrorCopy(state, table.mirror, method, url, copy_head, bool(framing))
        ex = Exchange(self, backend, forwarded + b"\r\n", method == b"HEAD", keep_alive, http11)
        # Only what differs from the class defaults is set.
        if set_cookie:
            ex.set_cookie = True
        if expect is not None:
            ex.expect = ex.rare = True
        if mirror is not None:
            ex.mirror = mirror
        self._enqueue(ex)

    def on_chunk_header(self) -> None:
        if self.skipper is None:
            # The first chunk of a chunked body (the last chunk, if the body is empty): from here
            # the body's pieces go upstream re-framed, and its end is found in the raw bytes.
            self.skipper = ChunkedEnd()
            ex = self.current
            if ex is not None:
                ex.chunked = True

    def on_body(self, body: bytes) -> None:
        self.body_seen += len(body)
        ex = self.current
        if ex is not None:
            ex.request_body(body)
            if ex is self.active:
                self.kick = ex

    def on_message_complete(self) -> None:
        skipper = self.skipper
        if skipper is None:
            self.start = self.body_at + self.body_seen
        else:
            self.skipper = None
            end = skipper.skip(self.buf, self.body_at)
            if end < 0:
                raise _Desync
            self.start = end
        ex = self.current
        if ex is None:
            return
        self.current = None
        if ex.chunked or ex.mirror is not None or ex.canned_answer is not None:
            ex.request_done()
        else:
            ex.req_done = True
        if ex is self.active:
            # The request is whole: it goes upstream now, in one write with its head if that is
            # still here (the usual case).
            if self.kick is ex:
                self.kick = None
            if ex.conn is None and not (ex.connecting or ex.finished_ or ex.resp_done or ex.canned_answer):
                # flush_request's usual case, and Exchange._start's usual case, inlined: the next
                # replica in turn is not ejected and has a warm connection for the whole request.
                backend = ex.backend
                pools = backend.pools  # type: ignore[union-attr]
                rr = backend.rr  # type: ignore[union-attr]
                if pools and pools[rr].down_until <= ex.start:
                    pool = pools[rr]
                    idle = pool.idle
                    if idle and not idle[-1].closed:
                        backend.rr = rr + 1 if rr + 1 < len(pools) else 0  # type: ignore[union-attr]
                        conn = idle.pop()
                        ex.conn = conn
                        data = ex.buf[0] if len(ex.buf) == 1 else b"".join(ex.buf)
                        ex.buf = []
                        ex.replay = data  # the whole request: kept (by reference) for a replay
                        conn.sink = conn.fast = ex
                        conn.done = False
                        conn.ticks = 0
                        conn.in_head = True
                        pool.busy.add(conn)
                        conn.transport.write(data)  # type: ignore[union-attr]
                        return
                ex._start(fresh=False)
            else:
                ex.flush_request()

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
            backend = nxt.backend
            if backend is not None and backend.stale:
                # Routed when its head was read, under a table swapped out since: the replicas it
                # would have used may be gone.
                nxt.reroute()
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

    Every field is a slot (no per-exchange dict, and the native build compiles it to a C struct).
    `rare` says whether any of the rarely-set flags (expect, retried, replayed, error, rechunk,
    until_close, dechunker) was set: a connection reuses an exchange for its next request only
    when none was, so a reused exchange resets only what every request sets."""

    __slots__ = (
        "backend",
        "buf",
        "canned_answer",
        "chunked",
        "client",
        "close_after",
        "conn",
        "connecting",
        "dechunker",
        "error",
        "expect",
        "finished_",
        "http11",
        "is_head",
        "mirror",
        "out",
        "rare",
        "rechunk",
        "replay",
        "replayed",
        "req_done",
        "resp_done",
        "resp_started",
        "retried",
        "set_cookie",
        "start",
        "status",
        "until_close",
    )

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
        self.out = b""  # answer bytes not yet written to the client
        self.conn: UpstreamConnection | None = None
        self.status = 0
        self.req_done = False
        self.resp_done = False
        self.resp_started = False
        self.finished_ = False
        # The request as first written, when that was all of it: what a replay sends again.
        self.replay: bytes | None = None
        # Read for every request, so slots too (see ClientConnection.on_headers_complete for what
        # a reused exchange sets again).
        self.chunked = False
        self.connecting = False
        self.set_cookie = False
        self.mirror: MirrorCopy | None = None
        self.canned_answer: bytes | None = None
        self.rare = False
        self.expect = False
        self.rechunk = False
        self.until_close = False
        self.retried = False
        self.replayed = False
        self.error = False
        self.dechunker: Dechunker | None = None

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
        if self.chunked and self.canned_answer is None and not self.resp_done:
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
            # Pool.acquire and UpstreamConnection.send, inlined: this runs for every request.
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
                    conn.sink = conn.fast = self
                    conn.done = False
                    conn.ticks = 0
                    conn.in_head = True
                    pool.busy.add(conn)
                    conn.transport.write(data)  # type: ignore[union-attr]
                    return
        self.connecting = True
        pool.connect(self)

    def reroute(self) -> Backend:
        """Route again on the table in force (see Backend.stale)."""
        table = self.client.state.table
        backend = self.backend
        assert backend is not None
        if table is not None:
            backend = self.backend = table.current(backend)
        return backend

    def _use(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        buf = self.buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        self.buf = []
        if self.req_done:
            self.replay = data  # the whole request: kept (by reference) for a replay
        conn.send(self, data, self)

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
                # Nothing reached the refusing replica, so the request can go to another, of the
                # table in force if the one it was routed by has been swapped out meanwhile.
                if backend.stale:
                    backend = self.reroute()
                alt = backend.pick(now, exclude=pool)
                if alt is not None:
                    self.retried = self.rare = True
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
        if m is not None:
            parts = []
            pos = 0
            while m is not None:
                parts.append(head[pos : m.start()])
                pos = m.end()
                m = _HOP_LINE.search(lower, pos)
            parts.append(head[pos:])
            head = b"".join(parts)
            lower = head.lower()
        if head[5:9] != b"1.1 ":
            head = b"HTTP/1.1" + head[8:]  # the client talks to us, in 1.1, whatever the upstream spoke
        framed = b"\r\ncontent-length:" in lower or self.is_head or status == 204 or status == 304
        if framed and self.http11 and not (self.close_after or self.set_cookie or self.mirror is not None):
            # The usual answer: head and body go out as received, minus hop-by-hop lines.
            self.out = head + b"\r\n" + body
            return
        self._head_slow(status, head, lower, body, framed)

    def upstream_whole(self, status: int, raw: bytes) -> None:
        """FastSink: the whole answer came in one read; its connection is back in its pool."""
        if not self.http11 or self.close_after or self.set_cookie or self.mirror is not None:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                raise ValueError("answer head without CRLF CRLF")  # (llhttp ended it: unreachable)
            self.upstream_head(status, raw[: end + 2], raw[end + 4 :])
            self.upstream_done()
            return
        # The usual answer: it goes out as received, minus hop-by-hop lines. An answer llhttp saw
        # end is framed (Content-Length, chunks, or no body), so the framing needs no look. One
        # search finds both the hop-by-hop lines and the end of the head.
        self.status = status
        self.resp_done = True
        self.conn = None
        lower = (raw if len(raw) <= 4096 else raw[: raw.find(b"\r\n\r\n") + 4]).lower()
        m = _ANSWER_SCAN.search(lower)
        if m is None:
            raise ValueError("answer head without CRLF CRLF")  # (llhttp ended it: unreachable)
        at, pos = m.span()
        if lower[at + 2] != 13:
            # Hop-by-hop lines to cut: usually one (Connection: keep-alive).
            m = _ANSWER_SCAN.search(lower, pos)
            if m is not None and lower[m.start() + 2] == 13:
                raw = raw[:at] + raw[pos:]
            else:
                parts = [raw[:at]]
                while m is not None and lower[m.start() + 2] != 13:
                    parts.append(raw[pos : m.start()])
                    pos = m.end()
                    m = _ANSWER_SCAN.search(lower, pos)
                parts.append(raw[pos:])
                raw = b"".join(parts)
        if not raw.startswith(b"HTTP/1.1 "):
            raw = b"HTTP/1.1" + raw[8:]  # the client talks to us, in 1.1, whatever the upstream spoke
        client = self.client
        self.resp_started = True
        if not client.closed:
            client.transport.write(raw)
        if self.req_done and not self.finished_:
            # _maybe_finish's usual case, inlined.
            self.finished_ = True
            stats = self.backend.stats  # type: ignore[union-attr]
            elapsed = _monotonic() - self.start
            stats.classes[status // 100] += 1
            stats.buckets[bisect_left(BUCKETS, elapsed)] += 1
            stats.latency_sum += elapsed
            if client.active is self and not client.waiting:
                client.active = None  # ClientConnection.finished's usual case, inlined
                if not self.rare:
                    # No rare field was set (retried, expect, ...; and connecting, set_cookie,
                    # mirror and canned_answer are unset on this path): the next request on this
                    # connection reuses this exchange. Nothing refers to it any more: its
                    # connection is back in its pool and the client connection let it go.
                    client.spare = self
            else:
                client.finished(self)
        else:
            self._maybe_finish()

    def upstream_done(self) -> None:
        """FastSink: the answer ended, its head given to upstream_head already."""
        self.upstream_complete()
        self.upstream_flush()

    def _head_slow(self, status: int, head: bytes, lower: bytes, body: bytes, framed: bool) -> None:
        out = [head]
        if not framed:
            if b"\r\ntransfer-encoding:" in lower:
                if not self.http11:
                    # An HTTP/1.0 client cannot read chunks: decode, and end the body by closing.
                    out[0] = _strip_lines(head, lower, (b"\r\ntransfer-encoding:",))[0]
                    self.dechunker = Dechunker()
                    self.rare = True
                    self.close_after = True
            elif self.http11:
                # The upstream ends the body by closing; the client gets chunks and keeps its connection.
                self.until_close = self.rechunk = self.rare = True
                out.append(b"transfer-encoding: chunked\r\n")
            else:
                self.until_close = self.rare = True
                self.close_after = True
        if self.close_after:
            out.append(b"connection: close\r\n")
        elif not self.http11:
            out.append(b"connection: keep-alive\r\n")
        if self.set_cookie:
            assert self.backend is not None
            out.append(self.backend.set_cookie)
        out.append(b"\r\n")
        self.out = b"".join(out)
        if self.mirror is not None:
            self.mirror.primary_head(status, head)
        if body:
            self.upstream_body(body)

    def upstream_body(self, data: bytes) -> None:
        if self.rechunk:
            self.out += b"%x\r\n" % len(data) + data + b"\r\n"
        elif self.dechunker is not None:
            self.out += self.dechunker.feed(data)
        else:
            self.out += data
        if self.mirror is not None:
            self.mirror.primary_body(data)

    def upstream_complete(self) -> bool:
        if self.rechunk:
            self.out += b"0\r\n\r\n"
        self.resp_done = True
        self.conn = None
        if self.mirror is not None:
            self.mirror.primary_complete()
        return self.req_done and not self.buf

    def upstream_flush(self) -> None:
        out = self.out
        client = self.client
        if out:
            self.out = b""
            self.resp_started = True
            if not client.closed:
                client.transport.write(out)
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
            self.replayed = self.rare = True
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
        self.error = self.rare = True
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
        self.out = b""
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
