"""Mirroring: the share mirrored, fire-and-forget behind a slow shadow, and the comparison."""

from __future__ import annotations

import statistics
import time
from typing import Any

from tests.procs import wait_for
from tests.proxy.conftest import Proxy, ProxyFactory, Upstreams, get, table

IGNORE = ["$.timestamp", "$.items[*].id"]


def mirror_stats(proxy: Proxy, revision: str) -> dict[str, Any]:
    return dict(proxy.stats()["mirrors"].get(revision) or {})


def settled(proxy: Proxy, revision: str) -> dict[str, Any] | None:
    """The mirror's counters once every copy sent has been compared or has failed."""
    m = mirror_stats(proxy, revision)
    done = m.get("compared", 0) + sum(m.get("errors", {}).values())
    return m if m and done == m["sent"] else None


def test_mirrored_share_matches_percent(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    t = table({"same1": 100}, upstreams, also=["shadow"], mirror={"revision": "shadow", "percent": 30})
    proxy = start_proxy(t)
    before = upstreams.count("shadow")
    conn = proxy.connection()
    for _ in range(2000):
        assert get(conn)[0] == 200
    m = wait_for(lambda: settled(proxy, "shadow"), what="mirror copies answered")
    received = upstreams.count("shadow") - before
    assert m["dropped"] == {}
    assert received == m["sent"]
    assert abs(received / 2000 * 100 - 30) <= 3, m


def test_slow_mirror_never_delays_the_client(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    # The shadow sleeps 1 s per request; were the client waiting on it, 200 sequential requests on
    # one keep-alive connection would take at least 200 s.
    t = table({"same1": 100}, upstreams, also=["slowshadow"], mirror={"revision": "slowshadow", "percent": 100})
    proxy = start_proxy(t, "--mirror-max-inflight", "8")
    conn = proxy.connection()
    latencies = []
    started = time.monotonic()
    for _ in range(200):
        t0 = time.monotonic()
        assert get(conn)[0] == 200
        latencies.append(time.monotonic() - t0)
    total = time.monotonic() - started
    assert total < 30, total
    assert statistics.median(latencies) < 0.25, statistics.median(latencies)
    m = mirror_stats(proxy, "slowshadow")
    # Copies beyond the in-flight bound are dropped and counted, never queued.
    assert m["sent"] >= 8
    assert m["dropped"].get("inflight_limit", 0) > 0
    assert m["sent"] + m["dropped"]["inflight_limit"] == 200


def test_differences_counted_by_kind_with_ignore_paths(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    others = ["shadow", "extra", "s500", "ctype"]
    proxy = start_proxy(
        table(
            {"same1": 100}, upstreams, also=others, mirror={"revision": "shadow", "percent": 100, "ignorePaths": IGNORE}
        )
    )
    conn = proxy.connection()

    def send(n: int) -> None:
        for _ in range(n):
            assert get(conn)[0] == 200

    # Same body but for the timestamp and item ids, which are ignored: identical.
    send(40)
    m = wait_for(lambda: settled(proxy, "shadow"), what="comparisons")
    assert (m["compared"], m["identical"], m["diffs"]) == (40, 40, {})

    # Without ignore paths, the volatile fields make every body differ.
    status, _ = proxy.swap(table({"same1": 100}, upstreams, also=others, mirror={"revision": "shadow", "percent": 100}))
    assert status == 200
    send(30)
    m = wait_for(lambda: (s := settled(proxy, "shadow")) and s["compared"] == 70 and s, what="comparisons")
    assert m["diffs"] == {"body": 30}
    assert 0 < len(m["samples"]) <= 50
    sample = m["samples"][-1]
    assert sample["kinds"] == ["body"] and sample["primary"]["status"] == 200

    # A status difference, a header difference; an added field differs even with ignore paths.
    for rev, kinds in (("s500", {"status"}), ("ctype", {"header:content-type"}), ("extra", {"body"})):
        mirror = {"revision": rev, "percent": 100, "ignorePaths": [*IGNORE, "$.name"]}
        assert proxy.swap(table({"same1": 100}, upstreams, also=others, mirror=mirror))[0] == 200
        send(20)
        m = wait_for(lambda rev=rev: (s := settled(proxy, rev)) and s["compared"] == 20 and s, what=f"{rev} compared")
        assert set(m["diffs"]) == kinds and all(v == 20 for v in m["diffs"].values()), (rev, m)


def test_mirror_only_matching_requests(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    mirror = {"revision": "shadow", "percent": 100, "matches": [{"headers": [{"name": "x-shadow", "exact": "yes"}]}]}
    proxy = start_proxy(table({"same1": 100}, upstreams, also=["shadow"], mirror=mirror))
    conn = proxy.connection()
    for i in range(50):
        assert get(conn, "/", {"x-shadow": "yes"} if i % 5 == 0 else {})[0] == 200
    m = wait_for(lambda: settled(proxy, "shadow"), what="mirror settled")
    assert m["sent"] == 10
