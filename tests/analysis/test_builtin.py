"""Builtin metrics: from a counters snapshot (the local proxy's interface) and, on Kubernetes, from
the routers' metrics in a real Prometheus through the shipped PromQL templates."""

from __future__ import annotations

import math

import pytest

from rollwise.analysis.providers.builtin import (
    BuiltinMeasurer,
    BuiltinPrometheus,
    CounterHistory,
    TrafficCounts,
    figure,
    histogram_quantile,
)
from rollwise.analysis.providers.prometheus import query_prometheus
from rollwise.analysis.providers.promql_templates import TEMPLATES, TemplateError, render
from rollwise.analysis.timestamps import utc_now
from rollwise.spec.analysis import BuiltinMetric, Measurement
from tests.analysis.helpers import context, metric, run
from tests.analysis.servers import BUCKETS_MS, RunningPrometheus

# 1000 requests, 10 failed; latency buckets in ms.
COUNTS = TrafficCounts(
    requests=1000,
    errors=10,
    latency_buckets=((100.0, 500), (250.0, 900), (500.0, 990), (math.inf, 1000)),
    latency_sum_ms=120_000.0,
)


class Source:
    def __init__(self, counts: dict[str, TrafficCounts]) -> None:
        self.counts = counts
        self.asked: list[tuple[str, float]] = []

    def traffic(self, revision: str, window_seconds: float) -> TrafficCounts | None:
        self.asked.append((revision, window_seconds))
        return self.counts.get(revision)


def measure_builtin(name: BuiltinMetric, condition: str, source: Source, revision: str = "canary") -> Measurement:
    m = metric(
        name=name,
        provider={"builtin": {"metric": name, "revision": revision, "window": "2m"}},
        successCondition=condition,
    )
    ctx = context(traffic=source, revisions={"canary": "rev-b", "stable": "rev-a"})
    return run(BuiltinMeasurer().measure(m, {}, ctx))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("request-count", 1000),
        ("success-rate", 0.99),
        ("error-rate", 0.01),
        ("latency-mean", 120.0),
        ("latency-p50", 100.0),
        ("latency-p90", 250.0),
        ("latency-p95", 250.0 + 250.0 * 50 / 90),
        ("latency-p99", 500.0),
    ],
)
def test_figures_from_counters(name: BuiltinMetric, expected: float) -> None:
    value, no_data = figure(name, COUNTS, "rev-b", "1m")
    assert no_data is None
    assert value == pytest.approx(expected)


def test_quantile_in_the_overflow_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.999, COUNTS.latency_buckets) == 500.0


def test_provider_reads_the_named_revision_over_the_window() -> None:
    source = Source({"rev-b": COUNTS})
    m = measure_builtin("success-rate", "result >= 0.99", source)
    assert m.phase == "Successful", m.message
    assert source.asked == [("rev-b", 120.0)]
    assert measure_builtin("latency-p99", "result < 400", source).phase == "Failed"


def test_no_requests_is_inconclusive_never_a_pass() -> None:
    source = Source({"rev-b": TrafficCounts(requests=0, errors=0)})
    m = measure_builtin("error-rate", "result < 0.01", source)
    assert m.phase == "Inconclusive"
    assert "no requests reached revision rev-b (canary) in the last 120s" in (m.message or "")
    lat = measure_builtin("latency-p95", "result < 500", source)
    assert lat.phase == "Inconclusive" and "no request latencies" in (lat.message or "")


def test_unknown_revision_is_an_error() -> None:
    m = measure_builtin("error-rate", "result < 0.01", Source({}))
    assert m.phase == "Error" and "no counters for canary revision rev-b" in (m.message or "")


def test_no_source_configured_is_an_error_saying_what_is_missing() -> None:
    m = metric(name="e", provider={"builtin": {"metric": "error-rate"}}, successCondition="result < 0.01")
    out = run(BuiltinMeasurer().measure(m, {}, context()))
    assert out.phase == "Error" and "neither is configured" in (out.message or "")


def test_counter_history_turns_cumulative_counters_into_windows() -> None:
    history = CounterHistory()
    buckets = ((100.0, 0), (math.inf, 0))
    history.record("r", 0.0, TrafficCounts(0, 0, buckets, 0.0))
    history.record("r", 30.0, TrafficCounts(300, 3, ((100.0, 200), (math.inf, 300)), 30_000.0))
    history.record("r", 60.0, TrafficCounts(900, 5, ((100.0, 700), (math.inf, 900)), 80_000.0))
    last_30s = history.traffic("r", 30.0)
    assert last_30s == TrafficCounts(600, 2, ((100.0, 500), (math.inf, 600)), 50_000.0)
    assert history.traffic("r", 600.0) == TrafficCounts(900, 5, ((100.0, 700), (math.inf, 900)), 80_000.0)
    assert history.traffic("unknown", 30.0) is None
    history.record("r", 90.0, TrafficCounts(50, 1, ((100.0, 40), (math.inf, 50)), 4_000.0))  # proxy restarted
    assert history.traffic("r", 30.0) == TrafficCounts(50, 1, ((100.0, 40), (math.inf, 50)), 4_000.0)


def test_templates_cover_every_metric_and_need_their_labels() -> None:
    names = set(BuiltinMetric.__args__)  # type: ignore[attr-defined]
    for router, family in TEMPLATES.items():
        assert set(family.templates) == names, router
    with pytest.raises(TemplateError, match="need label values for service"):
        render("istio", "error-rate", {"namespace": "shop"}, "1m")
    with pytest.raises(TemplateError, match="no PromQL templates for router 'traefik'"):
        render("traefik", "error-rate", {}, "1m")
    quoted = render("nginx", "request-count", {"namespace": "shop", "service": 'we"b'}, "1m")
    assert 'service="we\\"b"' in quoted


P50, P90 = 100.0, 250.0
P95 = 250.0 + (500.0 - 250.0) * (95 - 90) / (99 - 90)
assert BUCKETS_MS[-1][1] == 100  # the exporter's layout the expectations above rely on
EXPECTED: dict[BuiltinMetric, float] = {
    "error-rate": 0.01,
    "success-rate": 0.99,
    "latency-mean": 120.0,
    "latency-p50": P50,
    "latency-p90": P90,
    "latency-p95": P95,
    "latency-p99": 500.0,
}
LABELS = {
    "istio": {"namespace": "shop", "service": "web-canary"},
    "gatewayapi": {"cluster": "httproute/shop/web/rule/0/backend/1"},
    "nginx": {"namespace": "shop", "service": "web-canary"},
}


@pytest.mark.parametrize("router", sorted(TEMPLATES))
def test_templates_against_real_prometheus(prom: RunningPrometheus, router: str) -> None:
    for name, expected in EXPECTED.items():
        query = render(router, name, LABELS[router], "1m")
        answer = run(query_prometheus(prom.address, query, at=utc_now()))
        assert answer.no_data is None, (router, name, query)
        assert isinstance(answer.result, float)
        assert answer.result == pytest.approx(expected, rel=1e-6), (router, name, query)
    count = run(query_prometheus(prom.address, render(router, "request-count", LABELS[router], "1m"), at=utc_now()))
    assert isinstance(count.result, float) and count.result > 0


def test_templates_for_a_revision_without_traffic_have_no_data(prom: RunningPrometheus) -> None:
    query = render("istio", "error-rate", {"namespace": "shop", "service": "nobody"}, "1m")
    answer = run(query_prometheus(prom.address, query, at=utc_now()))
    assert answer.no_data is not None and "empty vector" in answer.no_data


def test_builtin_provider_through_prometheus(prom: RunningPrometheus) -> None:
    via = BuiltinPrometheus(address=prom.address, router="nginx", labels={"canary": LABELS["nginx"]})
    m = metric(
        name="e", provider={"builtin": {"metric": "error-rate", "window": "1m"}}, successCondition="result < 0.011"
    )
    out = run(BuiltinMeasurer().measure(m, {}, context(builtin_prometheus=via)))
    # The exporter's canary fails 1 request in 100; PromQL's rate ratio carries float noise, so
    # compare with a tolerance rather than on the boundary.
    assert out.phase == "Successful", out.message
    assert out.value is not None and abs(float(out.value) - 0.01) < 1e-6
    stable = metric(
        name="s", provider={"builtin": {"metric": "error-rate", "revision": "stable"}}, successCondition="result < 1"
    )
    missing = run(BuiltinMeasurer().measure(stable, {}, context(builtin_prometheus=via)))
    assert missing.phase == "Error" and "no nginx label values are configured for the stable revision" in (
        missing.message or ""
    )


def test_counts_from_a_histogram_in_seconds() -> None:
    counts = TrafficCounts.from_seconds(10, 1, ((0.1, 6), (math.inf, 10)), 1.5)
    assert counts.latency_buckets == ((100.0, 6), (math.inf, 10)) and counts.latency_sum_ms == 1500.0
