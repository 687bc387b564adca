"""Counters by status class, platform errors apart, latency histograms; the text parses."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.conftest import ProxyFactory, Upstreams, free_dead_port, get


def test_metrics_text_parses_and_counts(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    dead = free_dead_port()
    t = {
        "upstreams": {"a": [upstreams.addr("a")], "b": [upstreams.addr("b")], "gone": [f"127.0.0.1:{dead}"]},
        "weights": {"a": 50, "b": 50},
        "routes": [{"revision": "gone", "matches": [{"headers": [{"name": "x-gone", "exact": "1"}]}]}],
    }
    proxy = start_proxy(t)
    conn = proxy.connection()
    for i in range(100):
        path = "/status/404" if i % 10 == 0 else "/status/503" if i % 10 == 1 else "/"
        get(conn, path)
    for _ in range(3):
        assert get(conn, "/", {"x-gone": "1"})[0] == 502

    families = {f.name: f for f in text_string_to_metric_families(proxy.metrics())}
    requests = {(s.labels["revision"], s.labels["code"]): s.value for s in families["rollwise_proxy_requests"].samples}
    by_code = {code: sum(v for (_, c), v in requests.items() if c == code) for code in ("2xx", "4xx", "5xx")}
    assert by_code == {"2xx": 80, "4xx": 10, "5xx": 10}
    assert requests[("a", "2xx")] > 0 and requests[("b", "2xx")] > 0
    errors = [s for s in families["rollwise_proxy_platform_errors"].samples if s.value]
    assert [(s.labels["revision"], s.labels["kind"], s.value) for s in errors] == [("gone", "connect_refused", 3.0)]

    hist = families["rollwise_proxy_request_duration_seconds"]
    for rev in ("a", "b"):
        buckets = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels["revision"] == rev]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
        count = next(s.value for s in hist.samples if s.name.endswith("_count") and s.labels["revision"] == rev)
        assert count == buckets[-1].value == sum(v for (r, _), v in requests.items() if r == rev)
    assert families["rollwise_proxy_route_table_generation"].samples[0].value == 1
