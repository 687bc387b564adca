"""A/B and shadow reports on generated data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from rollwise.analysis.reports import (
    ShadowComparison,
    ShadowTally,
    VariantData,
    ab_report,
    ab_report_by,
    mean_estimate,
    quantile_estimate,
    shadow_report,
)
from rollwise.spec.strategies.abtest import WinnerBy


def variant(name: str, seed: int, requests: int, error_rate: float, median_ms: float) -> VariantData:
    rng = np.random.default_rng(seed)
    return VariantData(
        name=name,
        requests=requests,
        errors=int(rng.binomial(requests, error_rate)),
        latencies_ms=list(median_ms * np.exp(rng.normal(0, 0.4, 2000))),
        custom={"checkout-value": list(rng.normal(50, 10, 500))},
    )


def test_no_significant_difference_declares_no_winner() -> None:
    report = ab_report(variant("control", 1, 20_000, 0.02, 100), variant("candidate", 2, 20_000, 0.02, 100))
    assert report.winner is None
    assert report.summary.startswith("no significant difference on success-rate")
    s = report.control.success_rate
    assert s.value is not None and s.interval is not None and s.interval[0] < s.value < s.interval[1]


def test_clear_winner_on_success_rate_with_a_guardrail_note() -> None:
    control = variant("control", 3, 20_000, 0.03, 100)
    candidate = variant("candidate", 4, 20_000, 0.015, 130)
    report = ab_report(control, candidate)
    assert report.winner == "candidate"
    assert "candidate wins on success-rate" in report.summary
    assert "but candidate is significantly worse on latency" in report.summary
    success = report.comparisons[0]
    assert success.difference is not None and success.interval is not None
    assert success.interval[0] < success.difference < success.interval[1]
    assert success.interval[0] > 0  # the whole interval favours the candidate


def test_latency_and_custom_primaries() -> None:
    control = variant("control", 5, 10_000, 0.01, 120)
    candidate = variant("candidate", 6, 10_000, 0.01, 100)
    assert ab_report(control, candidate, primary="latency").winner == "candidate"
    lower_is_better = ab_report(control, candidate, primary="checkout-value", custom_better={"checkout-value": "lower"})
    assert lower_is_better.winner is None
    with pytest.raises(ValueError, match="primary metric 'revenue'"):
        ab_report(control, candidate, primary="revenue")


def test_no_data() -> None:
    empty = VariantData("control", 0, 0)
    report = ab_report(empty, VariantData("candidate", 0, 0))
    assert report.winner is None and report.summary == "no data to compare on success-rate"
    assert report.control.success_rate.value is None and report.control.latency_p95_ms.value is None


def test_estimates() -> None:
    samples = [float(x) for x in range(1, 101)]
    mean = mean_estimate(samples, 0.95)
    assert mean.value == 50.5 and mean.interval is not None
    assert mean.interval[0] < 50.5 < mean.interval[1]
    p95 = quantile_estimate(samples, 0.95, 0.95)
    assert p95.value == 95.0 and p95.interval is not None and p95.interval[0] <= 95 <= p95.interval[1]
    assert quantile_estimate([1.0, 2.0], 0.95, 0.95).interval is None  # too few to bound a p95


def test_shadow_report_by_kind_with_bounded_samples() -> None:
    tally = ShadowTally(samples_per_kind=2)
    for i in range(1000):
        status = 500 if i % 100 == 0 else 200
        tally.add(
            ShadowComparison(
                method="GET",
                path=f"/items/{i}",
                primary_status=200,
                shadow_status=None if i % 250 == 1 else status,
                header_mismatches=("content-type",) if i % 50 == 0 else (),
                body_mismatch=i % 10 == 0,
            )
        )
    report = tally.report()
    assert report.mirrored == 1000 and report.unanswered == 4 and report.compared == 996
    assert report.mismatches["status"].count == 10
    assert report.mismatches["header"].count == 20
    assert report.mismatches["body"].count == 100
    body = report.mismatches["body"]
    assert body.rate == pytest.approx(100 / 996) and body.interval is not None
    assert body.interval[0] < body.rate < body.interval[1]
    assert report.any_mismatch.count == 100
    assert [s.path for s in report.samples["status"]] == ["/items/0", "/items/100"]
    assert "996 of 1000 mirrored requests compared" in report.summary and "4 unanswered" in report.summary


def test_shadow_report_without_answers() -> None:
    tally = ShadowTally()
    tally.add(ShadowComparison("GET", "/", 200, None))
    report = tally.report()
    assert report.any_mismatch.rate is None
    assert report.summary == "no mirrored request was answered by the shadow (1 mirrored)"


def test_shadow_report_from_counters_kept_elsewhere() -> None:
    report = shadow_report(
        mirrored=200,
        unanswered=0,
        mismatches={"status": 2, "header:content-type": 3, "header:etag": 1, "body": 5},
        any_mismatch=8,
    )
    assert report.mismatches["header"].count == 4 and report.by_header == {"content-type": 3, "etag": 1}
    assert report.any_mismatch.rate == pytest.approx(0.04)
    with pytest.raises(ValueError, match="unknown mismatch kind 'latency'"):
        shadow_report(mirrored=1, unanswered=0, mismatches={"latency": 1}, any_mismatch=1)


def test_report_by_the_abtest_winner_by() -> None:
    control = variant("control", 5, 10_000, 0.01, 120)
    candidate = variant("candidate", 6, 10_000, 0.01, 100)
    by_p99 = ab_report_by(WinnerBy(metric="latency-p99", better="lower"), control, candidate)
    assert by_p99.winner == "candidate" and by_p99.primary == "latency-p99"
    by_errors = ab_report_by(WinnerBy(metric="error-rate", better="lower"), control, candidate)
    assert by_errors.winner is None
    by_value = ab_report_by(WinnerBy(metric="checkout-value", better="higher", confidence=0.99), control, candidate)
    assert by_value.confidence == 0.99 and by_value.winner is None
