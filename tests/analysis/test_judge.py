"""The canary judge on generated samples with known answers, and against scipy's own results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from rollwise.analysis.judge import JudgeSettings, MetricCriteria, judge, judge_metric, relative_effect

ERRORS = MetricCriteria("error-rate", direction="increase", allowed_effect=0.25, critical=True)
LATENCY = MetricCriteria("latency-p95", direction="increase", allowed_effect=0.10)
SUCCESS = MetricCriteria("success-rate", direction="decrease", allowed_effect=0.01)


def error_rates(rng: np.random.Generator, rate: float, intervals: int = 30, requests: int = 2000) -> list[float]:
    """Per-interval error rates of a revision serving `requests` per interval."""
    return list(rng.binomial(requests, rate, size=intervals) / requests)


def latencies(rng: np.random.Generator, median: float, intervals: int = 30) -> list[float]:
    """Per-interval p95 latencies (ms) with realistic interval-to-interval noise."""
    return list(median * np.exp(rng.normal(0, 0.08, size=intervals)) * 2.2)


def test_identical_distributions_pass() -> None:
    passed = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        verdict = judge(
            [
                (ERRORS, error_rates(rng, 0.01), error_rates(rng, 0.01)),
                (LATENCY, latencies(rng, 100), latencies(rng, 100)),
                (SUCCESS, [1 - x for x in error_rates(rng, 0.01)], [1 - x for x in error_rates(rng, 0.01)]),
            ]
        )
        passed += verdict.verdict == "Successful"
    # A significant difference larger than the allowed effect is rare between identical samples.
    assert passed >= 97


def test_five_points_more_errors_fail_the_run_alone() -> None:
    for seed in range(50):
        rng = np.random.default_rng(seed)
        verdict = judge(
            [
                (ERRORS, error_rates(rng, 0.06), error_rates(rng, 0.01)),
                (LATENCY, latencies(rng, 100), latencies(rng, 100)),
            ]
        )
        assert verdict.verdict == "Failed", (seed, verdict.reason)
        assert verdict.score == 0.0  # critical metric
        assert "critical metric 'error-rate' failed" in verdict.reason


def test_small_noise_stays_within_tolerance() -> None:
    # 3% slower with enough samples is significant, but inside the allowed 10%.
    rng = np.random.default_rng(7)
    canary, baseline = latencies(rng, 103, intervals=400), latencies(rng, 100, intervals=400)
    j = judge_metric(LATENCY, canary, baseline)
    assert j.p_value is not None and j.p_value < 0.05
    assert j.classification == "Pass" and not j.harmful
    assert "within the allowed 10%" in j.reason


def test_large_latency_regression_fails_a_non_critical_metric_by_score() -> None:
    rng = np.random.default_rng(3)
    verdict = judge(
        [
            (ERRORS, error_rates(rng, 0.01), error_rates(rng, 0.01)),
            (LATENCY, latencies(rng, 150), latencies(rng, 100)),
        ],
        JudgeSettings(pass_score=95, marginal_score=40),
    )
    assert verdict.verdict == "Inconclusive"  # 1 of 2 metrics pass: score 50, marginal
    assert verdict.score == 50.0 and "marginal" in verdict.reason and "failing: latency-p95" in verdict.reason


def test_harmless_direction_is_not_a_failure() -> None:
    rng = np.random.default_rng(5)
    j = judge_metric(ERRORS, error_rates(rng, 0.001), error_rates(rng, 0.02))
    assert j.classification == "Pass"  # one-sided test: an improvement is not a finding
    either = MetricCriteria("cpu", direction="either", allowed_effect=0.1)
    j2 = judge_metric(either, error_rates(rng, 0.001), error_rates(rng, 0.02))
    assert j2.classification == "Low" and j2.harmful


def test_no_data_is_inconclusive_never_a_pass() -> None:
    verdict = judge([(ERRORS, [float("nan")] * 30, [0.01] * 30), (LATENCY, [100.0, 101.0], [100.0] * 30)])
    assert verdict.verdict == "Inconclusive" and verdict.score is None
    assert all(j.classification == "NoData" for j in verdict.metrics)
    assert "too few samples" in verdict.metrics[0].reason


@pytest.mark.parametrize("direction", ["increase", "decrease", "either"])
def test_p_values_match_scipy(direction: str) -> None:
    rng = np.random.default_rng(11)
    canary, baseline = list(rng.normal(10.5, 2, 40)), list(rng.normal(10, 2, 35))
    criteria = MetricCriteria("m", direction=direction)  # type: ignore[arg-type]
    j = judge_metric(criteria, canary, baseline)
    alternative = {"increase": "greater", "decrease": "less", "either": "two-sided"}[direction]
    expected = stats.mannwhitneyu(canary, baseline, alternative=alternative)
    assert j.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert j.u_statistic == pytest.approx(float(expected.statistic))
    # U counts the canary samples above baseline ones (ties half): the orientation scipy uses.
    brute = sum((c > b) + 0.5 * (c == b) for c in canary for b in baseline)
    assert j.u_statistic == pytest.approx(brute)


def test_exact_small_sample_p_value() -> None:
    # Completely separated samples of 3: U = 0 and the exact two-sided p is 2/C(6,3) = 0.1.
    j = judge_metric(MetricCriteria("m", min_samples=3), [1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert j.u_statistic == 0 and j.p_value == pytest.approx(0.1)


def test_relative_effect() -> None:
    assert relative_effect(1.1, 1.0) == pytest.approx(0.1)
    assert relative_effect(0.0, 0.0) == 0.0
    assert relative_effect(0.01, 0.0) == float("inf")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="confidence"):
        JudgeSettings(confidence=1.5)
    with pytest.raises(ValueError, match="marginal"):
        JudgeSettings(pass_score=50, marginal_score=80)
