"""Seeded replay of request streams through three canary decision policies.

Every seed draws one stream of requests (Poisson arrivals per second, and for each request a
routing draw, an error draw and a latency draw). Every policy and every version replays the same
stream (common random numbers): a request goes to the new version when its routing draw is under
the policy's current weight; it fails when its error draw is under the error rate of the revision
that serves it; its latency is exp(mu + sigma * z) with the serving revision's mu. A good version
has stable's rates; bad versions add errors or latency.

Policies:
- flagger: Flagger's fixed schedule. Weight 10, +10 after each passing check every `interval`,
  promotion after a passing check at maxWeight 50; rollback when failed checks reach `threshold`.
  A check passes when the canary's success rate over the interval and its p99 are within the
  scenario's thresholds (99% and 400 ms in the base scenario).
- argo: an Argo Rollouts step list (20, 40, 60, 80% with a one-minute pause each, then 100%) with
  a background analysis every minute on the same two conditions, aborting after more than
  failureLimit=2 failed measurements.
- rollwise: `rollwise.analysis.sequential.decide` every 5 s on the canary's and stable's counts
  (errors, and requests over stable's p95 measured before the canary), starting at 5%, with stable's
  ten minutes before the canary as history.

The check thresholds of flagger and argo sit halfway between the good and the bad versions (in the
base scenario stable fails 0.5% of requests and has a p99 of 320 ms; the +1% version fails 1.5%,
the +50% version has a p99 of 480 ms: thresholds 99% and 400 ms), the fairest fixed thresholds.
Rollwise is told only its tolerance (0.5 point of errors) and its risk levels, not where the bad
versions are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rollwise.analysis.sequential import Evidence, WindowCounts, decide
from rollwise.spec.common import duration_seconds
from rollwise.spec.strategies.canary import DynamicWeighting, RiskLevels


@dataclass(frozen=True)
class Scenario:
    rps: float = 100.0
    base_errors: float = 0.005
    median_ms: float = 100.0
    sigma: float = 0.5
    horizon: int = 1200  # seconds simulated per rollout

    @property
    def min_success_rate(self) -> float:
        """The fixed policies' success-rate check: halfway between good and +1% errors."""
        return 1 - (self.base_errors + 0.005)

    @property
    def max_p99_ms(self) -> float:
        """The fixed policies' latency check: halfway between the p99 of good and +50% versions."""
        return 1.25 * self.median_ms * math.exp(2.3263 * self.sigma)


@dataclass(frozen=True)
class Version:
    name: str
    extra_errors: float = 0.0
    latency_factor: float = 1.0

    @property
    def bad(self) -> bool:
        return self.extra_errors > 0 or self.latency_factor > 1


VERSIONS = (
    Version("good"),
    Version("+1% errors", extra_errors=0.01),
    Version("+5% errors", extra_errors=0.05),
    Version("+50% latency", latency_factor=1.5),
)


@dataclass(frozen=True)
class Outcome:
    action: str  # "promote", "abort" or "undecided" (still running at the horizon)
    seconds: float  # when the decision took effect
    exposed: int  # requests served by the new version until then
    failed: int  # of which failed


class Stream:
    """One seed's requests: per-second arrival offsets and per-request draws."""

    def __init__(self, seed: int, scenario: Scenario) -> None:
        rng = np.random.default_rng(seed)
        self.scenario = scenario
        per_second = rng.poisson(scenario.rps, size=scenario.horizon)
        self.starts = np.concatenate(([0], np.cumsum(per_second)))
        n = int(self.starts[-1])
        self.route = rng.random(n)
        self.error = rng.random(n)
        self.z = rng.standard_normal(n)
        # Stable's ten minutes before the canary, for the policies that use history.
        history = int(scenario.rps * 600)
        self.history_requests = history
        self.history_errors = int(rng.binomial(history, scenario.base_errors))
        self.history_z = rng.standard_normal(min(history, 20_000))

    def window(self, a: int, b: int, weight: float) -> tuple[NDArray[np.bool_], slice]:
        """The requests of seconds [a, b): which went to the canary, and their slice."""
        span = slice(int(self.starts[a]), int(self.starts[min(b, self.scenario.horizon)]))
        return self.route[span] < weight / 100.0, span


@dataclass
class Served:
    canary: int = 0
    canary_failed: int = 0


def _errors(stream: Stream, span: slice, mask: NDArray[np.bool_], rate: float) -> int:
    return int(np.count_nonzero(stream.error[span][mask] < rate))


def _latencies(stream: Stream, span: slice, mask: NDArray[np.bool_], factor: float) -> NDArray[np.float64]:
    s = stream.scenario
    mu = math.log(s.median_ms * factor)
    return np.asarray(np.exp(mu + s.sigma * stream.z[span][mask]), dtype=np.float64)


def _rates(v: Version, s: Scenario) -> tuple[float, float]:
    return s.base_errors + v.extra_errors, v.latency_factor


def _fixed_check(stream: Stream, v: Version, a: int, b: int, weight: float, served: Served) -> bool | None:
    """One Flagger/Argo check over seconds [a, b) at `weight`: success rate and p99 against the
    scenario's thresholds. None when the canary served nothing (no data: the check is skipped)."""
    mask, span = stream.window(a, b, weight)
    errors_rate, factor = _rates(v, stream.scenario)
    n = int(np.count_nonzero(mask))
    failed = _errors(stream, span, mask, errors_rate)
    served.canary += n
    served.canary_failed += failed
    if n == 0:
        return None
    p99 = float(np.quantile(_latencies(stream, span, mask, factor), 0.99))
    s = stream.scenario
    return (1 - failed / n) >= s.min_success_rate and p99 <= s.max_p99_ms


def flagger(stream: Stream, v: Version, interval: int = 60, threshold: int = 5) -> Outcome:
    step, max_weight = 10, 50
    weight, failed_checks, t = step, 0, 0
    served = Served()
    while t + interval <= stream.scenario.horizon:
        ok = _fixed_check(stream, v, t, t + interval, weight, served)
        t += interval
        if ok is False:
            failed_checks += 1
            if failed_checks >= threshold:
                return Outcome("abort", t, served.canary, served.canary_failed)
        elif ok:
            if weight >= max_weight:
                return Outcome("promote", t, served.canary, served.canary_failed)
            weight += step
    return Outcome("undecided", t, served.canary, served.canary_failed)


def argo(stream: Stream, v: Version, interval: int = 60, failure_limit: int = 2) -> Outcome:
    steps = (20, 40, 60, 80)  # each followed by a one-minute pause
    served = Served()
    failures, t = 0, 0
    for weight in steps:
        ok = _fixed_check(stream, v, t, t + interval, weight, served)
        t += interval
        if ok is False:
            failures += 1
            if failures > failure_limit:
                return Outcome("abort", t, served.canary, served.canary_failed)
    return Outcome("promote", t, served.canary, served.canary_failed)


ROLLWISE = DynamicWeighting(
    start_weight=5,
    min_step_weight=5,
    max_step_weight=50,
    max_weight=100,
    velocity="exponential",
    interval="5s",
    min_samples=100,
    risk=RiskLevels(false_promotion=0.05, false_rollback=0.01, tolerance=0.005),
)


def rollwise(stream: Stream, v: Version, config: DynamicWeighting = ROLLWISE) -> Outcome:
    s = stream.scenario
    interval = int(duration_seconds(config.interval))
    errors_rate, factor = _rates(v, s)
    # The latency threshold is stable's p95 before the canary, held for the whole rollout.
    history_latency = np.exp(math.log(s.median_ms) + s.sigma * stream.history_z)
    threshold = float(np.quantile(history_latency, 0.95))
    history_slow = int(np.count_nonzero(history_latency > threshold))
    scale = stream.history_requests / len(stream.history_z)
    ev = Evidence.with_stable_history(stream.history_requests, stream.history_errors, round(history_slow * scale))
    weight, t = config.start_weight, 0
    served = Served()
    while t + interval <= s.horizon:
        mask, span = stream.window(t, t + interval, weight)
        t += interval
        nc, ns = int(np.count_nonzero(mask)), int(mask.size - np.count_nonzero(mask))
        failed = _errors(stream, span, mask, errors_rate)
        served.canary += nc
        served.canary_failed += failed
        counts = WindowCounts(
            canary_requests=nc,
            canary_errors=failed,
            stable_requests=ns,
            stable_errors=_errors(stream, span, ~mask, s.base_errors),
            canary_slow=int(np.count_nonzero(_latencies(stream, span, mask, factor) > threshold)),
            stable_slow=int(np.count_nonzero(_latencies(stream, span, ~mask, 1.0) > threshold)),
        )
        d = decide(config, weight, ev, counts)
        ev = d.evidence
        if d.action == "abort":
            return Outcome("abort", t, served.canary, served.canary_failed)
        weight = d.weight
        if weight >= config.max_weight:
            return Outcome("promote", t, served.canary, served.canary_failed)
    return Outcome("undecided", t, served.canary, served.canary_failed)


POLICIES: dict[str, Callable[[Stream, Version], Outcome]] = {"flagger": flagger, "argo": argo, "rollwise": rollwise}
