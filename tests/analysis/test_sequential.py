"""The dynamic weighting policy on seeded simulated request streams, and its individual rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from rollwise.analysis.sequential import Evidence, Tuning, WindowCounts, decide, statistics, wilson_bounds
from rollwise.spec.strategies.canary import DynamicWeighting, RiskLevels

CONFIG = DynamicWeighting(
    min_samples=100,
    interval="10s",
    risk=RiskLevels(false_promotion=0.05, false_rollback=0.01, tolerance=0.005),
)
SEEDS = 1000
RPS = 100
BASE_ERRORS = 0.005


@dataclass(frozen=True)
class Outcome:
    action: str  # "abort", "promote" or "undecided"
    seconds: int
    canary_requests: int


def simulate(
    seed: int,
    canary_errors: float,
    *,
    canary_slow: float = 0.05,
    history: bool = True,
    horizon: int = 1800,
    config: DynamicWeighting = CONFIG,
) -> Outcome:
    """One canary: Poisson arrivals at RPS split by the policy's weight, Bernoulli errors and
    'slower than stable's p95' events; the policy decides every 10 s."""
    rng = np.random.default_rng(seed)
    ev = Evidence()
    if history:  # stable's last ten minutes before the canary started
        n = RPS * 600
        ev = Evidence.with_stable_history(n, int(rng.binomial(n, BASE_ERRORS)), int(rng.binomial(n, 0.05)))
    weight, t, served = config.start_weight, 0, 0
    while t < horizon:
        n = int(rng.poisson(RPS * 10))
        nc = int(rng.binomial(n, weight / 100))
        ns = n - nc
        window = WindowCounts(
            nc,
            int(rng.binomial(nc, canary_errors)),
            ns,
            int(rng.binomial(ns, BASE_ERRORS)),
            int(rng.binomial(nc, canary_slow)),
            int(rng.binomial(ns, 0.05)),
        )
        served += nc
        t += 10
        d = decide(config, weight, ev, window)
        ev = d.evidence
        if d.action == "abort":
            return Outcome("abort", t, served)
        weight = d.weight
        if weight >= config.max_weight:
            return Outcome("promote", t, served)
    return Outcome("undecided", t, served)


def test_five_points_more_errors_abort_fast_in_99_percent_of_seeds() -> None:
    outcomes = [simulate(seed, BASE_ERRORS + 0.05) for seed in range(SEEDS)]
    fast = [o for o in outcomes if o.action == "abort" and o.canary_requests <= 500]
    assert len(fast) >= 0.99 * SEEDS
    assert all(o.action == "abort" for o in outcomes)


def test_slow_canary_aborts_fast_in_99_percent_of_seeds() -> None:
    # +50% latency on a lognormal(sigma 0.5) service: ~20% of its requests exceed stable's p95.
    outcomes = [simulate(seed, BASE_ERRORS, canary_slow=0.20) for seed in range(SEEDS)]
    fast = [o for o in outcomes if o.action == "abort" and o.canary_requests <= 500]
    assert len(fast) >= 0.99 * SEEDS


@pytest.mark.parametrize("history", [True, False], ids=["stable-history", "no-history"])
def test_healthy_canary_never_aborts_in_99_percent_of_seeds(history: bool) -> None:
    outcomes = [simulate(seed, BASE_ERRORS, history=history) for seed in range(SEEDS)]
    aborted = sum(o.action == "abort" for o in outcomes)
    assert aborted <= 0.01 * SEEDS
    promoted = sum(o.action == "promote" for o in outcomes)
    assert promoted >= 0.98 * SEEDS


def test_no_decision_before_min_samples() -> None:
    broken = WindowCounts(canary_requests=50, canary_errors=50, stable_requests=950, stable_errors=0)
    d = decide(CONFIG, 5, Evidence(), broken)
    assert d.action == "hold" and d.weight == 5
    assert "served 50 of the 100 requests" in d.reason
    d2 = decide(CONFIG, 5, d.evidence, broken)
    assert d2.action == "abort" and d2.weight == 0
    assert "error rate is above stable's" in d2.reason and "canary 100.00% of 100" in d2.reason


def test_velocity_grows_with_consecutive_raises_within_the_step_limits() -> None:
    healthy = WindowCounts(canary_requests=200, canary_errors=1, stable_requests=3800, stable_errors=19)
    weights, ev, weight = [], Evidence.with_stable_history(60_000, 300), CONFIG.start_weight
    for _ in range(4):
        d = decide(CONFIG, weight, ev, healthy)
        assert d.action == "raise", d.reason
        weights.append(d.weight)
        ev, weight = d.evidence, d.weight
    assert weights == [10, 20, 40, 50]  # steps 5, 10, 20, then the exploration limit
    linear = CONFIG.model_copy(update={"velocity": "linear"})
    ev, weight, steps = Evidence.with_stable_history(60_000, 300), 5, []
    for _ in range(3):
        d = decide(linear, weight, ev, healthy)
        steps.append(d.weight - weight)
        ev, weight = d.evidence, d.weight
    assert steps == [5, 10, 15]


def test_holds_at_the_exploration_limit_until_health_is_proven_then_promotes() -> None:
    ev = Evidence.with_stable_history(60_000, 300)
    half = WindowCounts(canary_requests=500, canary_errors=2, stable_requests=500, stable_errors=3)
    d = decide(CONFIG, 50, ev, half)
    assert d.action == "hold" and "waiting for evidence of health" in d.reason
    for _ in range(20):
        if d.action == "raise":
            break
        d = decide(CONFIG, 50, d.evidence, half)
    assert d.action == "raise" and d.weight == 100
    assert "evidence of health is complete" in d.reason
    assert d.statistics.health_progress >= 1


def test_holds_when_evidence_leans_towards_harm() -> None:
    ev = Evidence.with_stable_history(60_000, 300)
    worse = WindowCounts(canary_requests=300, canary_errors=7, stable_requests=2700, stable_errors=13)
    d = decide(CONFIG, 20, ev, worse)
    assert d.action == "hold" and d.weight == 20 and "leans towards harm" in d.reason
    assert d.evidence.raises == 0


def test_statistics_recomputed_from_counts_and_serialisable() -> None:
    ev = Evidence(canary_requests=2000, canary_errors=10, stable_requests=60_000, stable_errors=300, raises=3)
    assert Evidence.from_dict(ev.to_dict()) == ev
    assert ev.to_dict()["canaryRequests"] == 2000
    st = statistics(CONFIG, ev)
    assert st.error_harm < 0 < st.error_health
    assert st.latency_harm is None
    assert st.error_bar == pytest.approx(np.log(100)) and st.health_bar == pytest.approx(np.log(20))
    with_latency = statistics(CONFIG, Evidence(canary_requests=10, latency_canary_requests=10, stable_requests=10))
    # The false-rollback risk is split: 80% to errors, 20% to latency.
    assert with_latency.error_bar == pytest.approx(np.log(1 / 0.008))
    assert with_latency.latency_bar == pytest.approx(np.log(1 / 0.002))
    history = Evidence.with_stable_history(60_000, 300, 3000)
    assert Evidence.from_dict(history.to_dict()) == history
    assert Evidence.from_dict(Evidence.with_stable_history(10, 0).to_dict()).history_slow is None


def test_tighter_risk_needs_more_evidence() -> None:
    ev = Evidence(canary_requests=400, canary_errors=12, stable_requests=60_000, stable_errors=300)
    strict = CONFIG.model_copy(update={"risk": RiskLevels(false_rollback=0.001, tolerance=0.005)})
    assert statistics(CONFIG, ev).error_bar < statistics(strict, ev).error_bar


def test_tuning_knobs() -> None:
    ev = Evidence.with_stable_history(60_000, 300)
    w = WindowCounts(canary_requests=200, canary_errors=1, stable_requests=3800, stable_errors=19)
    d = decide(CONFIG, 30, ev, w, Tuning(explore_weight=30))
    assert d.action == "hold" and "at 30%" in d.reason


def test_wilson_bounds() -> None:
    upper, lower = wilson_bounds(5, 1000, 1.96)
    assert lower < 0.005 < upper
    assert wilson_bounds(0, 0, 3.0) == (1.0, 0.0)


def test_window_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="inconsistent canary counts"):
        WindowCounts(canary_requests=1, canary_errors=2, stable_requests=0, stable_errors=0)


def test_stable_worse_than_its_history_does_not_abort_a_canary_as_bad_as_stable() -> None:
    # Stable failed 0.5% before the canary; during the rollout an incident elsewhere makes both
    # revisions fail 3%. Against the history the canary looks harmful; against stable now it is not.
    ev = Evidence.with_stable_history(60_000, 300)
    d = decide(
        CONFIG, 20, ev, WindowCounts(canary_requests=2000, canary_errors=60, stable_requests=8000, stable_errors=240)
    )
    assert d.action != "abort", d.reason
    blind = decide(
        CONFIG, 20, ev, WindowCounts(canary_requests=2000, canary_errors=60, stable_requests=0, stable_errors=0)
    )
    assert blind.action == "abort"  # with no stable traffic now, the history is all there is
