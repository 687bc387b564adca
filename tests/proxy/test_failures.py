"""Retry on a refused connection, and the proxy's own 502/503/504 answers."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

from tests.procs import wait_for
from tests.proxy.conftest import ProxyFactory, Upstreams, free_dead_port, get, table


def test_retry_on_refused_goes_to_another_replica(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    dead = free_dead_port()
    t = {"upstreams": {"a": [f"127.0.0.1:{dead}", upstreams.addr("a")]}, "weights": {"a": 100}}
    proxy = start_proxy(t)
    for _ in range(20):
        conn = proxy.connection()  # new connections, so each request may meet the dead replica
        assert get(conn)[:2] == (200, "a")
        conn.close()
    rev = proxy.stats()["revisions"]["a"]
    assert rev["retries"] >= 1
    assert rev["platformErrors"] == {}
    assert rev["requests"]["2xx"] == 20


def test_502_names_the_revision(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    dead = free_dead_port()
    t = {"upstreams": {"a": [upstreams.addr("a")], "broken": [f"127.0.0.1:{dead}"]}, "weights": {"a": 50, "broken": 50}}
    proxy = start_proxy(t)
    conn = proxy.connection()
    answers = [get(conn) for _ in range(40)]
    failed = [a for a in answers if a[0] != 200]
    assert failed and all(a[0] == 502 for a in failed)
    body = failed[0][2].decode()
    assert "revision 'broken'" in body and "connection refused" in body
    rev = proxy.stats()["revisions"]["broken"]
    # The platform's failures are counted apart from the revision's own answers.
    assert rev["platformErrors"] == {"connect_refused": len(failed)}
    assert rev["requests"]["5xx"] == 0


def test_504_on_read_timeout(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"slow": 100}, upstreams), "--read-timeout", "0.5")
    status, _, body = get(proxy.connection())
    assert status == 504
    assert "revision 'slow'" in body.decode() and "read_timeout" in body.decode()
    assert proxy.stats()["revisions"]["slow"]["platformErrors"] == {"read_timeout": 1}


def test_503_before_any_table(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(None)
    conn = proxy.connection()
    status, _, body = get(conn)
    assert status == 503 and b"no route table" in body
    # The connection stays usable, and serves once a table arrives.
    assert proxy.swap(table({"b": 100}, upstreams))[0] == 200
    assert get(conn)[:2] == (200, "b")


def test_504_on_connect_timeout(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    # A listener that never accepts, with its queue full: further connects get no answer at all.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    port = blackhole.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        t = {"upstreams": {"hole": [f"127.0.0.1:{port}"]}, "weights": {"hole": 100}}
        proxy = start_proxy(t, "--connect-timeout", "0.5")
        status, _, body = get(proxy.connection())
        assert status == 504 and "revision 'hole'" in body.decode() and "connect_timeout" in body.decode()
    finally:
        for s in fillers:
            s.close()
        blackhole.close()


def test_sigterm_lets_requests_in_flight_finish(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"slowshadow": 100}, upstreams))
    result: list[tuple[int, str, bytes]] = []
    t = threading.Thread(target=lambda: result.append(get(proxy.connection())))
    t.start()
    wait_for(lambda: any(u["inflight"] for u in proxy.stats()["upstreams"].values()), what="request in flight")
    proxy.proc.send_signal(signal.SIGTERM)
    t.join(timeout=30)
    assert result and result[0][:2] == (200, "slowshadow")
    assert proxy.proc.wait(timeout=30) == 0


def test_admin_token(start_proxy: ProxyFactory, upstreams: Upstreams, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    proxy = start_proxy(table({"a": 100}, upstreams), "--admin-token-file", str(token))
    assert proxy.admin("GET", "/healthz")[0] == 200
    assert proxy.admin("GET", "/stats")[0] == 401
    assert proxy.swap(table({"b": 100}, upstreams))[0] == 401
    assert get(proxy.connection())[1] == "a"
