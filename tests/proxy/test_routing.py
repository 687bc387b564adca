"""Weights per request on keep-alive connections, match rules, and the sticky cookie."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable

from tests.proxy.conftest import ProxyFactory, Upstreams, get, table


def run_load(
    connect: Callable[[], http.client.HTTPConnection],
    total: int,
    connections: int,
    headers: dict[str, str] | None = None,
) -> Counter[str]:
    """`total` requests over `connections` keep-alive connections in parallel; counts by upstream."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        local: Counter[str] = Counter()
        try:
            conn = connect()
            for _ in range(n):
                status, upstream, _ = get(conn, "/", headers)
                assert status == 200, status
                local[upstream] += 1
            conn.close()
        except BaseException as exc:
            errors.append(exc)
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=worker, args=(total // connections,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return counts


def test_weighted_split_per_request_on_keepalive(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"a": 90, "b": 10}, upstreams))
    counts = run_load(proxy.connection, 2400, 4)
    assert sum(counts.values()) == 2400
    share_b = counts["b"] / 2400 * 100
    assert abs(share_b - 10) <= 3, counts
    # Each connection alone also sees both revisions: the choice is per request.
    conn = proxy.connection()
    seen = {get(conn)[1] for _ in range(200)}
    assert seen == {"a", "b"}


def test_three_way_split(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"a": 50, "b": 30, "c": 20}, upstreams))
    counts = run_load(proxy.connection, 2000, 2)
    for name, weight in (("a", 50), ("b", 30), ("c", 20)):
        assert abs(counts[name] / 2000 * 100 - weight) <= 3, counts


def test_matches_route_all_matching_requests(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    routes = [
        # header exact OR (cookie regex AND query prefix)
        {
            "revision": "b",
            "matches": [
                {"headers": [{"name": "X-Canary", "exact": "always"}]},
                {"cookies": [{"name": "beta", "regex": "^(yes|true)$"}], "queryParams": [{"name": "v", "prefix": "2"}]},
            ],
        },
        {"revision": "c", "matches": [{"headers": [{"name": "user-agent", "regex": "Mobile"}]}]},
    ]
    proxy = start_proxy(table({"a": 100}, upstreams, also=["b", "c"], routes=routes))
    conn = proxy.connection()
    for _ in range(300):
        assert get(conn, "/", {"x-canary": "always"})[1] == "b"
        assert get(conn, "/?v=2.1", {"Cookie": "other=1; beta=yes"})[1] == "b"
        assert get(conn, "/", {"User-Agent": "Foo Mobile Bar"})[1] == "c"
    # Near misses go by weight: only one half of the AND, a wrong value, a prefix not matching.
    for path, headers in [
        ("/?v=2", {"Cookie": "beta=no"}),
        ("/?v=3", {"Cookie": "beta=yes"}),
        ("/", {"Cookie": "beta=yes"}),
        ("/", {"x-canary": "sometimes"}),
        ("/?w=2", {"Cookie": "beta=true"}),
    ]:
        assert get(conn, path, headers)[1] == "a", (path, headers)


def test_sticky_cookie_keeps_the_first_choice(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"a": 50, "b": 50}, upstreams, stickyCookie="rw-rev"))
    firsts: Counter[str] = Counter()
    for _ in range(40):
        conn = proxy.connection()
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        first = resp.getheader("x-upstream") or ""
        cookie = resp.getheader("set-cookie") or ""
        assert cookie.startswith(f"rw-rev={first};"), cookie
        firsts[first] += 1
        # The user keeps that revision for every later request, and is not told again.
        for _ in range(10):
            conn.request("GET", "/", headers={"Cookie": f"x=1; rw-rev={first}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.getheader("x-upstream") == first
            assert resp.getheader("set-cookie") is None
        conn.close()
    assert set(firsts) == {"a", "b"}
    # A cookie naming a revision without weight is replaced by a fresh choice.
    conn = proxy.connection()
    conn.request("GET", "/", headers={"Cookie": "rw-rev=gone"})
    resp = conn.getresponse()
    resp.read()
    assert (resp.getheader("set-cookie") or "").startswith(f"rw-rev={resp.getheader('x-upstream')};")
