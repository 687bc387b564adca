"""HTTP edges: chunked bodies both ways, HEAD, Expect: 100-continue, Upgrade (refused with 501),
HTTP/1.0 clients, answers framed by closing, pipelining and malformed requests."""

from __future__ import annotations

import json
import socket

import pytest

from tests.proxy.conftest import Proxy, ProxyFactory, Upstreams, get, table


@pytest.fixture
def proxy(start_proxy: ProxyFactory, upstreams: Upstreams) -> Proxy:
    return start_proxy(table({"a": 100}, upstreams))


def raw(proxy: Proxy, data: bytes, *, until_close: bool = True, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while until_close:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def read_one(s: socket.socket) -> bytes:
    """One answer framed by Content-Length, however the bytes arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.lower().split(b"\r\n") if ln.startswith(b"content-length:")))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def test_chunked_request_body_is_forwarded(proxy: Proxy) -> None:
    conn = proxy.connection()
    conn.request("POST", "/echo", body=iter([b"abc", b"", b"def" * 1000]), encode_chunked=True)
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    assert resp.status == 200
    assert doc["body"] == "abc" + "def" * 1000
    assert ["transfer-encoding", "chunked"] in doc["headers"]


def test_large_body_streams_through(proxy: Proxy) -> None:
    body = b"x" * (3 << 20)
    conn = proxy.connection()
    conn.request("POST", "/echo", body=body)
    resp = conn.getresponse()
    assert resp.status == 200 and len(json.loads(resp.read())["body"]) == len(body)


def test_chunked_and_until_close_answers(proxy: Proxy) -> None:
    conn = proxy.connection()
    conn.request("GET", "/chunked")
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked" and resp.read() == b"one-two-a"
    # No length and ended by the upstream closing: re-framed as chunked, the client keeps its connection.
    conn.request("GET", "/close")
    resp = conn.getresponse()
    assert resp.getheader("transfer-encoding") == "chunked" and resp.read() == b"until-close-a"
    assert get(conn)[0] == 200


def test_head_has_no_body_and_keeps_the_connection(proxy: Proxy) -> None:
    conn = proxy.connection()
    for path in ("/", "/chunked"):
        conn.request("HEAD", path)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    assert int(resp.getheader("content-length") or 0) > 0 and resp.read() == b""
    # Had a body leaked after a HEAD answer, this would read it as its status line.
    status, upstream, body = get(conn)
    assert (status, upstream) == (200, "a") and json.loads(body)["name"] == "a"


def test_expect_100_continue_answered_by_the_proxy(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        out = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
            out += s.recv(65536)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    doc = json.loads(body)
    assert doc["body"] == "hello"
    assert all(name != "expect" for name, _ in doc["headers"])  # not forwarded


def test_unknown_expectation_is_417(proxy: Proxy) -> None:
    out = raw(proxy, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\nhi")
    assert out.startswith(b"HTTP/1.1 417")


def test_upgrade_is_refused_with_501(proxy: Proxy) -> None:
    req = (
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    out = raw(proxy, req)  # returns once the proxy closes the connection
    assert out.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"upgrade (websocket, h2c) and CONNECT are not supported" in out
    assert b"connection: close" in out.lower()
    assert raw(proxy, b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n").startswith(b"HTTP/1.1 501")


def test_http10_client(proxy: Proxy) -> None:
    out = raw(proxy, b"GET /chunked HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower()
    assert body == b"one-two-a"
    # HTTP/1.0 with keep-alive and a length: the connection stays open for a second request.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        for _ in range(2):
            s.sendall(b"GET /status/201 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = read_one(s)
            assert data.startswith(b"HTTP/1.1 201") and b"connection: keep-alive" in data.lower()


def test_pipelined_requests_answered_in_order(proxy: Proxy) -> None:
    reqs = b"".join(
        b"GET /status/%d HTTP/1.1\r\nHost: t\r\n%s\r\n" % (code, b"Connection: close\r\n" if code == 203 else b"")
        for code in (201, 202, 203)
    )
    out = raw(proxy, reqs)
    positions = [out.find(b"HTTP/1.1 %d" % code) for code in (201, 202, 203)]
    assert -1 not in positions and positions == sorted(positions)


def test_malformed_request_is_400(proxy: Proxy) -> None:
    assert raw(proxy, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    huge = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"y" * 70000 + b"\r\n\r\n"
    assert raw(proxy, huge).startswith(b"HTTP/1.1 431")


def test_large_answer_streams_through(proxy: Proxy) -> None:
    size = 8 << 20
    conn = proxy.connection()
    conn.request("GET", f"/big?n={size}")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200 and len(body) == size
    assert body[:512] == bytes(range(256)) * 2 and body[-1] == (size - 1) % 256
    assert get(conn)[0] == 200  # the connection is still in step


def test_many_headers_hop_by_hop_and_connection_listed(proxy: Proxy) -> None:
    lines = b"".join(b"X-Many-%d: value %d\r\n" % (i, i) for i in range(60))
    req = (
        b"GET /echo HTTP/1.1\r\nHost: t\r\n" + lines + b"Connection: keep-alive, X-Secret\r\nX-Secret: hop\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.1\r\nX-Last: end\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        for _ in range(2):  # the connection stays usable
            s.sendall(req)
            head, _, body = read_one(s).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            headers = json.loads(body)["headers"]
            names = [name for name, _ in headers]
            assert [n for n in names if n.startswith("x-many-")] == [f"x-many-{i}" for i in range(60)]
            assert ["x-many-59", "value 59"] in headers and ["x-last", "end"] in headers
            assert not {"connection", "keep-alive", "te", "x-secret"} & set(names)
            assert ["x-forwarded-for", "192.0.2.1, 127.0.0.1"] in headers
