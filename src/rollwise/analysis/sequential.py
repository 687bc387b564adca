"""The decision policy of dynamic canary weighting: after each interval, raise the canary's weight,
hold it, or abort, from what the canary and stable served.

Why sequential probability ratio tests (Wald), and not a fixed-sample test or a Bayesian posterior:
the policy looks at the data after every interval and must be allowed to look as often as it
likes. A fixed-sample test (or Flagger's per-interval threshold) checked after every interval
inflates its false alarms with every look; a posterior probability "P(canary worse) > 0.95" checked
repeatedly does the same, and its error rates depend on the prior. The likelihood ratio of a
healthy canary is a non-negative martingale, so by Ville's inequality the chance that it *ever*
reaches 1/alpha is at most alpha, however often it is checked and however the weights move. That
turns the configured risk levels into guarantees: `falseRollback` bounds the chance of aborting a
healthy canary, `falsePromotion` the chance of promoting a harmful one.

Two tests run side by side, each in both directions:
- errors: the canary's error rate p_c against stable's p_s. Healthy: p_c = p_s. Harmful:
  p_c = p_s + tolerance (`risk.tolerance`; below 0.1 point it is taken as 0.1 point). Between the
  two either decision is acceptable (Wald's indifference zone).
- latency: the share of canary requests slower than a threshold (stable's p95 measured before the
  canary started) against stable's share over the same threshold (about 5%). Harmful:
  `latency_ratio` times stable's share. This turns a latency distribution into a Bernoulli
  stream, so the same test applies, with no assumption about the shape of the distribution.

Stable's rate is not known, only estimated from stable's own requests (independent of the
canary's). For fixed canary counts the harm ratio falls as the healthy rate assumed for stable
rises, and the health ratio rises with it. So the abort test assumes stable's rate is its upper
confidence bound and the promotion test its lower bound: while the bounds hold, each statistic is
at most the exact ratio at stable's true rate, and the guarantee above carries over. Both are
recomputed from the cumulative counts at every evaluation, so early, wide bounds leave no debt.
Stable's counts from before the canary (its history) tighten the bounds from the first interval;
when stable's rate during the rollout clearly departs from its history, the history is set aside.

Against a badly broken canary the harm side mixes alternatives (1, 2 and 4 times the tolerance):
a mixture of likelihood ratios is still a martingale, and a canary failing 5% more of its requests
is caught after about a hundred requests instead of several hundred, for log(3) more evidence.

Decisions, after `minSamples` canary requests:
- abort when a harm ratio reaches its bar: ln(1/(share * falseRollback)), the risk split over the
  two tests (errors 80%, latency 20%);
- promote (raise towards maxWeight) when both health ratios reach ln(1/falsePromotion);
- hold while the data favour harm (a harm ratio above 1, or past `hold_fraction` of its abort
  bar when tuned): unsure, so no more exposure;
- otherwise raise, faster as evidence of health accumulates: the step grows with consecutive
  raises (linear or exponential velocity) and with the share of the promotion bar already
  reached, between minStepWeight and maxStepWeight; before the promotion bar is reached the weight
  stops at `explore_weight` (50%: past it stable, the reference, serves less than the canary).

Pure functions over counts; the Evidence carried between evaluations (cumulative counts, stable's
history and the number of consecutive raises) belongs in the rollout status.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from rollwise.spec.strategies.canary import DynamicWeighting

Action = Literal["raise", "hold", "abort"]

_MIN_TOLERANCE = 0.001
_RATE_FLOOR = 1e-4  # keeps log-ratios finite when stable has shown no errors at all
_RATE_CEILING = 0.999


@dataclass(frozen=True)
class WindowCounts:
    """What both revisions served during one interval. `*_slow` count requests slower than a
    latency threshold held for the whole rollout: stable's p95 measured before the canary started
    (a threshold re-estimated from each interval's few hundred requests moves with every interval,
    which makes the counts overdispersed and the test too eager). Leave them None when latency is
    not measured."""

    canary_requests: int
    canary_errors: int
    stable_requests: int
    stable_errors: int
    canary_slow: int | None = None
    stable_slow: int | None = None

    def __post_init__(self) -> None:
        for name in ("canary", "stable"):
            n, e = getattr(self, f"{name}_requests"), getattr(self, f"{name}_errors")
            slow = getattr(self, f"{name}_slow")
            if n < 0 or not 0 <= e <= n or (slow is not None and not 0 <= slow <= n):
                raise ValueError(f"inconsistent {name} counts: {n} requests, {e} errors, {slow} slow")


@dataclass(frozen=True)
class Evidence:
    """Everything the policy carries from one evaluation to the next: cumulative counts since the
    canary started (latency counts only over intervals where latency was measured), stable's counts
    from before the canary (`history_*`), and the number of consecutive raises (the velocity)."""

    canary_requests: int = 0
    canary_errors: int = 0
    stable_requests: int = 0
    stable_errors: int = 0
    latency_canary_requests: int = 0
    latency_canary_slow: int = 0
    latency_stable_requests: int = 0
    latency_stable_slow: int = 0
    history_requests: int = 0
    history_errors: int = 0
    history_slow: int | None = None
    raises: int = 0

    def add(self, w: WindowCounts) -> Evidence:
        latency = w.canary_slow is not None and w.stable_slow is not None
        return Evidence(
            canary_requests=self.canary_requests + w.canary_requests,
            canary_errors=self.canary_errors + w.canary_errors,
            stable_requests=self.stable_requests + w.stable_requests,
            stable_errors=self.stable_errors + w.stable_errors,
            latency_canary_requests=self.latency_canary_requests + (w.canary_requests if latency else 0),
            latency_canary_slow=self.latency_canary_slow + (w.canary_slow or 0 if latency else 0),
            latency_stable_requests=self.latency_stable_requests + (w.stable_requests if latency else 0),
            latency_stable_slow=self.latency_stable_slow + (w.stable_slow or 0 if latency else 0),
            history_requests=self.history_requests,
            history_errors=self.history_errors,
            history_slow=self.history_slow,
            raises=self.raises,
        )

    def to_dict(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        names = {_camel(f.name): f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {names[k]: None if v is None else int(v) for k, v in data.items() if k in names}
        return cls(**kwargs)

    @classmethod
    def with_stable_history(cls, requests: int, errors: int, slow: int | None = None) -> Evidence:
        """Start from what stable served just before the canary (e.g. its last ten minutes, and
        how many of those requests were slower than the latency threshold): stable's rates are then
        known well from the first interval. When stable's rate during the rollout clearly departs
        from its history (an incident elsewhere), the history is set aside, so that a stable that
        got worse does not make a healthy canary look harmful."""
        return cls(history_requests=requests, history_errors=errors, history_slow=slow)


@dataclass(frozen=True)
class Tuning:
    """Settings of the policy that the spec does not expose (yet)."""

    latency_ratio: float = 2.0
    harm_multiples: tuple[float, ...] = (1.0, 2.0, 4.0)
    error_share: float = 0.8
    explore_weight: int = 50
    hold_fraction: float = 0.0
    bound_z: float = 2.0


@dataclass(frozen=True)
class Statistics:
    """Log-likelihood ratios: `*_harm` harmful:healthy (abort side), `*_health` healthy:harmful
    (promotion side); `latency_*` are None when latency is not measured."""

    error_harm: float
    error_health: float
    latency_harm: float | None
    latency_health: float | None
    error_bar: float
    latency_bar: float | None
    health_bar: float

    @property
    def health_progress(self) -> float:
        """Share of the promotion bar reached by the weaker of the two health ratios."""
        health = self.error_health if self.latency_health is None else min(self.error_health, self.latency_health)
        return max(0.0, health / self.health_bar)

    @property
    def harm_progress(self) -> float:
        """Share of its abort bar reached by the stronger of the two harm ratios."""
        error = self.error_harm / self.error_bar
        if self.latency_harm is None or self.latency_bar is None:
            return error
        return max(error, self.latency_harm / self.latency_bar)


@dataclass(frozen=True)
class Decision:
    action: Action
    weight: int
    evidence: Evidence
    reason: str
    statistics: Statistics


def statistics(config: DynamicWeighting, ev: Evidence, tuning: Tuning | None = None) -> Statistics:
    tuning = tuning or Tuning()
    risk = config.risk
    margin = max(risk.tolerance, _MIN_TOLERANCE)
    error_harm, error_health = _test(
        ev.canary_requests,
        ev.canary_errors,
        (ev.stable_requests, ev.stable_errors),
        (ev.history_requests, ev.history_errors),
        tuning,
        lambda p, m: p + m * margin,
    )
    latency_harm = latency_health = None
    if ev.latency_canary_requests > 0:
        history = (ev.history_requests, ev.history_slow) if ev.history_slow is not None else (0, 0)
        latency_harm, latency_health = _test(
            ev.latency_canary_requests,
            ev.latency_canary_slow,
            (ev.latency_stable_requests, ev.latency_stable_slow),
            history,
            tuning,
            lambda q, m: q * tuning.latency_ratio**m,
        )
    # The false-rollback risk is split between the two tests (a union bound); errors get the larger
    # share because latency evidence comes ten times faster (5% of requests exceed a p95, far
    # fewer fail), so a higher bar costs the latency test little.
    error_share = 1.0 if latency_harm is None else tuning.error_share
    return Statistics(
        error_harm=error_harm,
        error_health=error_health,
        latency_harm=latency_harm,
        latency_health=latency_health,
        error_bar=math.log(1 / (error_share * risk.false_rollback)),
        latency_bar=None if latency_harm is None else math.log(1 / ((1 - error_share) * risk.false_rollback)),
        health_bar=math.log(1 / risk.false_promotion),
    )


def decide(
    config: DynamicWeighting,
    weight: int,
    evidence: Evidence,
    window: WindowCounts,
    tuning: Tuning | None = None,
) -> Decision:
    """Fold one interval's counts into the evidence and decide the next weight."""
    tuning = tuning or Tuning()
    risk = config.risk
    ev = evidence.add(window)
    st = statistics(config, ev, tuning)
    rates = _rates(ev)

    def decision(action: Action, new_weight: int, reason: str, raises: int) -> Decision:
        return Decision(action, new_weight, _with_raises(ev, raises), reason, st)

    if ev.canary_requests < config.min_samples:
        return decision(
            "hold",
            weight,
            f"collecting: the canary has served {ev.canary_requests} of the {config.min_samples} requests "
            f"needed before any decision ({rates})",
            ev.raises,
        )
    if st.error_harm >= st.error_bar:
        return decision(
            "abort",
            0,
            f"the canary's error rate is above stable's by {risk.tolerance:g} or more: likelihood ratio "
            f"e^{st.error_harm:.1f} passed the bar e^{st.error_bar:.1f} (false-rollback risk {risk.false_rollback:g}); "
            f"{rates}",
            0,
        )
    if st.latency_harm is not None and st.latency_bar is not None and st.latency_harm >= st.latency_bar:
        return decision(
            "abort",
            0,
            f"the canary is slow: it exceeds stable's p95 at least {tuning.latency_ratio:g}x as often as stable; "
            f"likelihood ratio e^{st.latency_harm:.1f} passed the bar e^{st.latency_bar:.1f}; {rates}",
            0,
        )
    progress = st.health_progress
    if progress >= 1:
        return decision(
            "raise",
            min(config.max_weight, weight + config.max_step_weight),
            f"evidence of health is complete (false-promotion risk {risk.false_promotion:g}); {rates}",
            ev.raises + 1,
        )
    if st.harm_progress >= tuning.hold_fraction:
        return decision(
            "hold",
            weight,
            f"unsure: evidence leans towards harm ({st.harm_progress:.0%} of the way to abort); {rates}",
            0,
        )
    cap = min(tuning.explore_weight, config.max_weight - 1)
    if weight >= cap:
        return decision(
            "hold",
            weight,
            f"at {weight}%, waiting for evidence of health ({progress:.0%} of the way to promotion); {rates}",
            ev.raises,
        )
    return decision(
        "raise",
        min(weight + _step(config, ev.raises, progress), cap),
        f"healthy so far ({progress:.0%} of the evidence needed to promote); {rates}",
        ev.raises + 1,
    )


def _step(config: DynamicWeighting, raises: int, progress: float) -> int:
    lo, hi = config.min_step_weight, max(config.min_step_weight, config.max_step_weight)
    velocity = lo * 2 ** min(raises, 16) if config.velocity == "exponential" else lo * (raises + 1)
    by_evidence = round(progress * hi)
    return int(max(lo, min(hi, max(velocity, by_evidence))))


def _test(
    n: int,
    k: int,
    during: tuple[int, int],
    before: tuple[int, int],
    tuning: Tuning,
    harmful: Callable[[float, float], float],
) -> tuple[float, float]:
    """(harm, health) log-likelihood ratios of `k` events in `n` canary requests, against stable's
    (requests, events) during the rollout and before it. `harmful(p, m)` is the harmful rate for
    healthy rate p at multiple m of the tolerance."""
    reference = (during[0] + before[0], during[1] + before[1])
    if _changed(during, before, tuning.bound_z):
        reference = during  # stable is not what it was before the canary: compare with now only
    if n == 0 or reference[0] == 0:
        return 0.0, 0.0
    upper, lower = wilson_bounds(reference[1], reference[0], tuning.bound_z)
    p0 = _clamp(upper)
    ratios = []
    for m in tuning.harm_multiples:
        p1 = _clamp(harmful(p0, m))
        ratios.append(_bernoulli_llr(n, k, p1, p0) if p1 > p0 else 0.0)
    q0 = _clamp(lower)
    q1 = _clamp(harmful(q0, tuning.harm_multiples[0]))
    health = _bernoulli_llr(n, k, q0, q1) if q1 > q0 else 0.0
    return _mixture(ratios), health


def _changed(during: tuple[int, int], before: tuple[int, int], z: float) -> bool:
    """Whether stable's rate during the rollout and before it are clearly different (their
    confidence intervals do not overlap): then the history would mislead both tests."""
    if during[0] == 0 or before[0] == 0:
        return False
    now_upper, now_lower = wilson_bounds(during[1], during[0], z)
    then_upper, then_lower = wilson_bounds(before[1], before[0], z)
    return now_lower > then_upper or now_upper < then_lower


def _bernoulli_llr(n: int, k: int, p_num: float, p_den: float) -> float:
    """log of P(k events in n | p_num) / P(k events in n | p_den)."""
    return k * math.log(p_num / p_den) + (n - k) * math.log((1 - p_num) / (1 - p_den))


def _clamp(rate: float) -> float:
    return min(max(rate, _RATE_FLOOR), _RATE_CEILING)


def _mixture(llrs: list[float]) -> float:
    """log of the mean of the likelihood ratios."""
    top = max(llrs)
    return top + math.log(sum(math.exp(x - top) for x in llrs) / len(llrs))


def wilson_bounds(k: int, n: int, z: float) -> tuple[float, float]:
    """(upper, lower) Wilson score bounds of a proportion k/n."""
    if n <= 0:
        return 1.0, 0.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return min(1.0, centre + half), max(0.0, centre - half)


def _with_raises(ev: Evidence, raises: int) -> Evidence:
    return Evidence(**{**asdict(ev), "raises": raises})


def _rates(ev: Evidence) -> str:
    def pct(k: int, n: int) -> str:
        return f"{100 * k / n:.2f}%" if n else "n/a"

    text = (
        f"errors: canary {pct(ev.canary_errors, ev.canary_requests)} of {ev.canary_requests}, "
        f"stable {pct(ev.stable_errors, ev.stable_requests)} of {ev.stable_requests}"
    )
    if ev.latency_canary_requests:
        text += (
            f"; over stable's p95: canary {pct(ev.latency_canary_slow, ev.latency_canary_requests)}, "
            f"stable {pct(ev.latency_stable_slow, ev.latency_stable_requests)}"
        )
    return text


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
