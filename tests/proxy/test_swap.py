"""The route table is swapped whole, under load, without losing a request; bad tables are refused."""

from __future__ import annotations

import threading
from collections import Counter

from tests.procs import wait_for
from tests.proxy.conftest import ProxyFactory, Upstreams, get, table


def test_swap_under_load_loses_no_request(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    tables = [
        table({"a": 100}, upstreams, also=["b", "c"]),
        table({"b": 100}, upstreams, also=["a", "c"]),
        table({"a": 50, "c": 50}, upstreams),  # b leaves the table: its pool is retired
        table({"b": 10, "c": 90}, upstreams),
    ]
    proxy = start_proxy(tables[0])
    stop = threading.Event()
    results: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    served = [0]

    def load() -> None:
        local: Counter[int] = Counter()
        try:
            conn = proxy.connection()
            while not stop.is_set():
                local[get(conn)[0]] += 1
                served[0] += 1  # progress only; a lost increment under a race does no harm
        except BaseException as exc:
            errors.append(exc)
        with lock:
            results.update(local)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            status, doc = proxy.swap(tables[i % len(tables)])
            assert status == 200, doc
            assert doc["generation"] == i + 2
            # Let traffic run on each table before the next swap.
            mark = served[0]
            wait_for(lambda mark=mark: served[0] >= mark + 25 or errors, what="traffic on the new table")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    assert set(results) == {200}, results
    assert sum(results.values()) > 40 * 25
    # The last table (b 10 / c 90) is the one in force.
    conn = proxy.connection()
    seen = Counter(get(conn)[1] for _ in range(300))
    assert set(seen) <= {"b", "c"} and seen["c"] > seen["b"] > 0


def test_in_flight_request_finishes_on_the_old_table(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"slowshadow": 100}, upstreams))
    result: list[tuple[int, str, bytes]] = []
    t = threading.Thread(target=lambda: result.append(get(proxy.connection())))
    t.start()
    # Wait until the request is in flight to the (1 s) upstream, then swap it out of the table.
    wait_for(lambda: any(u["inflight"] for u in proxy.stats()["upstreams"].values()), what="request in flight")
    assert proxy.swap(table({"a": 100}, upstreams))[0] == 200
    assert get(proxy.connection())[1] == "a"
    t.join(timeout=30)
    assert result and result[0][:2] == (200, "slowshadow")


def test_bad_table_is_refused_and_the_old_one_kept(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    good = table({"a": 100}, upstreams, also=["b"])
    proxy = start_proxy(good)
    bad_tables = [
        ({**good, "weights": {"a": 60, "b": 30}}, "sum to 100"),
        ({**good, "weights": {"a": 50, "zz": 50}}, "'zz' has weight 50 but no ready upstream"),
        ({**good, "routes": [{"revision": "b", "matches": [{"headers": [{"name": "x", "regex": "("}]}]}]}, "regex"),
        ({**good, "mirror": {"revision": "b", "percent": 10, "ignorePaths": ["items"]}}, "must start with $"),
        ({**good, "stickyCookie": "bad cookie"}, "cookie"),
        ({**good, "routes": [{"revision": "b", "matches": []}]}, "at least one match"),
    ]
    for bad, words in bad_tables:
        status, doc = proxy.swap(bad)
        assert status == 400, doc
        assert any(words in p for p in doc["problems"]), (words, doc)
    status, doc = proxy.admin("GET", "/routes")
    assert doc["generation"] == 1 and doc["table"]["weights"] == {"a": 100}
    assert get(proxy.connection())[:2] == (200, "a")
    status, doc = proxy.admin("PUT", "/routes", None)
    assert status == 400


def test_a_table_without_weights_answers_503_until_something_can_serve(
    start_proxy: ProxyFactory, upstreams: Upstreams
) -> None:
    # The engine's empty route table (a recreate's downtime): the proxy says nothing can serve.
    proxy = start_proxy(table({"a": 100}, upstreams))
    status, doc = proxy.swap({"upstreams": {}, "weights": {}})
    assert status == 200, doc
    conn = proxy.connection()
    for _ in range(3):
        code, _, body = get(conn)
        assert code == 503 and b"no ready replica" in body
    assert "(none)" not in proxy.stats()["revisions"]  # no revision served anything
    assert proxy.swap({"upstreams": {}, "weights": {}, "routes": [{"revision": "a", "matches": []}]})[0] == 400
    assert proxy.swap(table({"b": 100}, upstreams))[0] == 200
    assert get(proxy.connection())[:2] == (200, "b")
