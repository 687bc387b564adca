"""Heads taken as raw bytes, without sockets. Requests: the client side's callbacks fed pipelined
requests cut at random places, and what reaches the upstream parsed again and compared with what
the client sent (minus the lines the proxy must not forward, plus X-Forwarded-For). Answers: the
upstream side fed answers whole and cut at every place, and what reaches the client compared."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest

from rollwise.platforms.local.proxy.chunked import ChunkedEnd, dechunk
from rollwise.platforms.local.proxy.protocol import ClientConnection
from rollwise.platforms.local.proxy.routes import RouteTable
from rollwise.platforms.local.proxy.settings import ProxySettings
from rollwise.platforms.local.proxy.state import ProxyState
from rollwise.platforms.local.proxy.table import compile_table
from rollwise.platforms.local.proxy.upstream import UpstreamConnection

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"
HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade", b"expect"}


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.1.2.3", 5555) if name == "peername" else default

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


@dataclass
class Message:
    method: bytes = b""
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    done: bool = False


class Collector:
    """Parses a stream of requests the way an upstream would."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.messages.append(Message())

    def on_url(self, url: bytes) -> None:
        self.messages[-1].url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.messages[-1].headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.messages[-1].method = self.parser.get_method()

    def on_body(self, body: bytes) -> None:
        self.messages[-1].body += body

    def on_message_complete(self) -> None:
        self.messages[-1].done = True


class Rig:
    """A client connection whose revision has one replica, served by fake upstream connections
    that answer each request once it has arrived whole."""

    def __init__(self, table: dict[str, Any] | None = None, answers: list[list[bytes]] | None = None) -> None:
        # Each request's answer, as the pieces the upstream sends it in (by default a short 200).
        self.scripted = answers
        self.state = ProxyState(None, ProxySettings())  # type: ignore[arg-type]
        doc = table or {"upstreams": {"a": ["127.0.0.1:1"]}, "weights": {"a": 100}}
        self.state.table = compile_table(
            RouteTable.from_dict(doc), 1, self.state.pool_for, self.state.stats_for, self.state.mirror_stats_for
        )
        self.upstreams: list[tuple[UpstreamConnection, FakeTransport, Collector, list[int]]] = []
        for pool in self.state.pools.values():
            for _ in range(3):
                conn = UpstreamConnection(pool)
                transport = FakeTransport()
                conn.connection_made(transport)  # type: ignore[arg-type]
                pool.idle.append(conn)
                self.upstreams.append((conn, transport, Collector(), [0]))
        self.client = ClientConnection(self.state)
        self.transport = FakeTransport()
        self.client.connection_made(self.transport)  # type: ignore[arg-type]
        self.forwarded: list[Message] = []

    def feed(self, data: bytes) -> None:
        self.client.data_received(data)
        self.answer()

    def answer(self) -> None:
        progress = True
        while progress:
            progress = False
            for conn, transport, collector, answered in self.upstreams:
                if transport.out:
                    pending, transport.out = transport.out, []
                    for piece in pending:
                        collector.parser.feed_data(piece)
                while answered[0] < len(collector.messages) and collector.messages[answered[0]].done:
                    msg = collector.messages[answered[0]]
                    answered[0] += 1
                    self.forwarded.append(msg)
                    if self.scripted is not None:
                        for piece in self.scripted.pop(0):
                            conn.data_received(piece)
                    else:
                        body = b"" if msg.method == b"HEAD" else b"ok"
                        conn.data_received(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n" + body
                        )
                    progress = True

    def answers(self) -> bytes:
        return b"".join(self.transport.out)


def _name(rng: random.Random, name: str) -> bytes:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name).encode()


def _request(rng: random.Random, i: int) -> tuple[bytes, Message]:
    """One request as sent, and the request the upstream must see."""
    method = rng.choice([b"GET", b"GET", b"POST", b"PUT", b"HEAD"])
    url = b"/r%d?x=%d" % (i, rng.randrange(1000))
    version = b"HTTP/1.1" if rng.random() < 0.9 else b"HTTP/1.0"
    sent: list[tuple[bytes, bytes]] = [(b"Host", b"example")]
    want: list[tuple[bytes, bytes]] = [(b"host", b"example")]
    listed: set[bytes] = set()
    for k in range(rng.randrange(16)):
        kind = rng.random()
        if kind < 0.55:
            name, value = _name(rng, f"X-Plain-{k}"), b"v%d  \t x" % k
            sent.append((name, value))
            want.append((name.lower(), value))
        elif kind < 0.65:
            sent.append((_name(rng, "X-Forwarded-For"), b"192.0.2.%d" % k))
        elif kind < 0.8:
            name = _name(rng, rng.choice(["Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade-Not"]))
            sent.append((name, b"whatever"))
            if name.lower() == b"upgrade-not":
                want.append((name.lower(), b"whatever"))
        else:
            name = _name(rng, f"X-Listed-{k}")
            listed.add(name.lower())
            sent.append((name, b"hop"))
    if version == b"HTTP/1.0":
        sent.append((b"Connection", b"keep-alive"))
    if listed:
        sent.append((_name(rng, "Connection"), b"keep-alive, " + b", ".join(sorted(listed))))
    body = b""
    framing: list[tuple[bytes, bytes]] = []
    raw_body = b""
    if method in (b"POST", b"PUT"):
        # Bodies that hold what looks like the end of a head, and a whole request.
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(60))) + b"\r\n\r\nGET /fake HTTP/1.1\r\n\r\n"
        if rng.random() < 0.5 and version == b"HTTP/1.1":
            framing.append((b"Transfer-Encoding", b"chunked"))
            pos = 0
            while pos < len(body):
                size = rng.randrange(1, 20)
                ext = rng.choice([b"", b";a=b", b';q="x y"'])
                raw_body += b"%x%s\r\n%s\r\n" % (len(body[pos : pos + size]), ext, body[pos : pos + size])
                pos += size
            raw_body += b"0\r\n" + (b"X-Trailer: t\r\n" if rng.random() < 0.5 else b"") + b"\r\n"
        else:
            framing.append((b"Content-Length", b"%d" % len(body)))
            raw_body = body
    sent += framing
    want += [(n.lower(), v) for n, v in framing]
    rng.shuffle(sent)
    xff = [v for n, v in sent if n.lower() == b"x-forwarded-for"]
    want.append((b"x-forwarded-for", b", ".join([*xff, b"10.1.2.3"])))
    lead = rng.choice([b"", b"", b"", b"\r\n"]) if i else b""
    head = lead + method + b" " + url + b" " + version + b"\r\n"
    data = head + b"".join(n + b": " + v + b"\r\n" for n, v in sent) + b"\r\n" + raw_body
    return data, Message(method, url, want, body, True)


def _comparable(m: Message) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    headers = sorted((n, v.strip(b" \t")) for n, v in m.headers)
    return m.method, m.url, headers, m.body


@pytest.mark.parametrize("seed", range(40))
def test_pipelined_requests_cut_anywhere(seed: int) -> None:
    rng = random.Random(seed)
    reqs = [_request(rng, i) for i in range(rng.randrange(1, 12))]
    stream = b"".join(data for data, _ in reqs)
    rig = Rig()
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 7, 20, 100, len(stream)])
        rig.feed(stream[pos : pos + step])
        pos += step
    assert [_comparable(m) for m in rig.forwarded] == [_comparable(want) for _, want in reqs]
    for m in rig.forwarded:
        names = {n for n, _ in m.headers}
        assert not names & HOP and not any(n.startswith(b"x-listed") for n in names)
    assert rig.answers().count(b"HTTP/1.1 200 OK\r\n") == len(reqs)
    assert not rig.transport.closed


def test_many_headers_and_one_read_per_byte() -> None:
    lines = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * i) for i in range(200))
    req = b"GET /many HTTP/1.1\r\nHost: h\r\n" + lines + b"\r\n"
    rig = Rig()
    for i in range(len(req)):
        rig.feed(req[i : i + 1])
    (m,) = rig.forwarded
    assert m.url == b"/many" and len(m.headers) == 202  # Host, 200 lines, X-Forwarded-For
    assert m.headers[-1] == (b"x-forwarded-for", b"10.1.2.3")


def test_connection_lists_hop_by_hop_names() -> None:
    rig = Rig()
    rig.feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo: 1\r\nConnection: X-Foo, close, Host, Content-Length\r\n"
        b"X-Bar: 2\r\nx-foo: 3\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n"
    )
    (m,) = rig.forwarded
    # Host (and framing lines) stay whatever Connection says; "close" still ends the connection.
    assert m.headers == [(b"host", b"h"), (b"x-bar", b"2"), (b"x-forwarded-for", b"1.1.1.1, 10.1.2.3")]
    assert rig.transport.closed
    rig = Rig()
    rig.feed(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nConnection: x-forwarded-for\r\n\r\n")
    assert rig.forwarded[0].headers == [(b"x-forwarded-for", b"10.1.2.3")]


def test_request_line_rewritten_when_not_plain_http11() -> None:
    rig = Rig()
    rig.feed(b"GET  /a?b  HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    collector = next(c for _, _, c, answered in rig.upstreams if answered[0])
    assert [(m.method, m.url) for m in collector.messages] == [(b"GET", b"/a?b"), (b"GET", b"/c")]
    assert rig.answers().count(b"HTTP/1.1 200 OK") == 2


def test_routing_on_a_header_is_seen_in_the_raw_head() -> None:
    table = {
        "upstreams": {"a": ["127.0.0.1:1"], "b": ["127.0.0.1:2"]},
        "weights": {"a": 100},
        "routes": [{"revision": "b", "matches": [{"headers": [{"name": "X-Canary", "exact": "always"}]}]}],
    }
    rig = Rig(table)
    for value in (b"always", b"never", b"always  "):
        rig.feed(b"GET / HTTP/1.1\r\nHost: h\r\nx-CANARY:  " + value + b"\r\n\r\n")
    served = [rig.state.revision_stats[r].snapshot().requests["2xx"] for r in ("a", "b")]
    # Trailing blanks count, as llhttp reports the value.
    assert served == [2, 1]


@pytest.mark.parametrize("seed", range(30))
def test_chunked_end_agrees_with_llhttp(seed: int) -> None:
    rng = random.Random(seed)
    body = b""
    for _ in range(rng.randrange(6)):
        size = rng.randrange(1, 40)
        ext = rng.choice([b"", b";x", b';y="a b;c"', b";a=1;b=2"])
        body += b"%0*x%s\r\n%s\r\n" % (rng.randrange(1, 4), size, ext, bytes(rng.randrange(256) for _ in range(size)))
    body += (
        b"0" * rng.randrange(1, 3) + b"\r\n" + b"".join(b"T%d: v\r\n" % k for k in range(rng.randrange(3))) + b"\r\n"
    )
    after = b"GET / HTTP/1.1\r\n\r\n"
    stream = body + after
    end = ChunkedEnd()
    pos = 0
    found = -1
    while found < 0:
        cut = min(len(stream), pos + rng.randrange(1, 9))
        piece = stream[pos:cut]
        found = end.skip(piece, 0)
        if found >= 0:
            found += pos
        pos = cut
    assert found == len(body)
    # llhttp ends the request there too, and reads the same body.
    collector = Collector()
    collector.parser.feed_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + stream)
    assert [(m.done, m.body) for m in collector.messages] == [(True, dechunk(body)), (True, b"")]


def _cuts(data: bytes) -> list[list[bytes]]:
    """`data` whole, then cut in two at every place, then byte by byte."""
    return (
        [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))] + [[data[i : i + 1] for i in range(len(data))]]
    )


def _serve(answer: list[bytes], method: bytes = b"GET") -> bytes:
    """What the client gets for one request whose answer comes in `answer`'s pieces; a second
    request on the same connection checks that the exchange and the connections stay in step."""
    rig = Rig(answers=[answer, [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"]])
    rig.feed(method + b" / HTTP/1.1\r\nHost: h\r\n\r\n")
    first = rig.answers()
    rig.transport.out.clear()
    rig.feed(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert rig.answers() == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
    assert not rig.transport.closed
    return first


def test_answer_hop_by_hop_lines_are_cut_however_the_answer_comes() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nCONNECTION: keep-alive\r\nX-A: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Length: 5\r\nproxy-connection: x\r\nUpgrade: h2c\r\nX-Connection: kept\r\n\r\nhello"
    )
    want = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\nX-Connection: kept\r\n\r\nhello"
    for pieces in _cuts(answer):
        assert _serve(pieces) == want, pieces


def test_answer_from_http10_upstream_and_interim_answers() -> None:
    answer = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    assert _serve([answer]) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    # 1xx answers before the real one are not passed on, whether they come with it or apart.
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
    final = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    for pieces in _cuts(interim + final)[:: len(interim) // 7]:
        assert _serve(pieces) == final, pieces


def test_answers_without_body_and_chunked_answers() -> None:
    head_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    for pieces in _cuts(head_answer):
        assert _serve(pieces, b"HEAD") == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    for status in (b"204 No Content", b"304 Not Modified"):
        assert (
            _serve([b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n"]) == b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n"
        )
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    for pieces in _cuts(chunked):
        assert _serve(pieces) == chunked, pieces


def test_expect_100_continue_is_answered_and_not_forwarded() -> None:
    rig = Rig()
    rig.feed(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
    assert rig.answers() == b"HTTP/1.1 100 Continue\r\n\r\n"
    rig.feed(b"abc")
    (m,) = rig.forwarded
    assert m.body == b"abc" and b"expect" not in {n for n, _ in m.headers}
    assert rig.answers().endswith(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_transfer_codings_of_a_chunked_request_are_kept() -> None:
    rig = Rig()
    rig.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nT: 1\r\n\r\n")
    (m,) = rig.forwarded
    assert (b"transfer-encoding", b"gzip, chunked") in m.headers and m.body == b"ab"


def test_a_never_ending_chunk_line_is_refused() -> None:
    rig = Rig()
    rig.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 1000)
    for _ in range(70):
        rig.feed(b"e" * 1000)
    assert rig.client.broken
