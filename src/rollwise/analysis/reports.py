"""Reports at the end of an experiment: the A/B report (which variant is better, with confidence
intervals) and the shadow report (how often the mirrored revision answered differently).

A winner is declared only when the difference on the primary metric is significant at the chosen
confidence; otherwise the report says "no significant difference", never a winner by a hair.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats  # type: ignore[import-untyped]

from rollwise.analysis.sequential import wilson_bounds
from rollwise.spec.strategies.abtest import WinnerBy

Better = Literal["higher", "lower"]
Interval = tuple[float, float]


# --- A/B -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantData:
    """What one variant served: request and error counts, latency samples (ms) and custom metric
    samples (one value per user, session or interval, as the experiment defines them)."""

    name: str
    requests: int
    errors: int
    latencies_ms: Sequence[float] = ()
    custom: Mapping[str, Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    interval: Interval | None
    samples: int


@dataclass(frozen=True)
class VariantSummary:
    name: str
    requests: int
    success_rate: Estimate
    latency_mean_ms: Estimate
    latency_p50_ms: Estimate
    latency_p95_ms: Estimate
    custom: Mapping[str, Estimate]


@dataclass(frozen=True)
class Comparison:
    """Candidate minus control on one metric; `better` names the variant that is significantly
    better, or None."""

    metric: str
    difference: float | None
    interval: Interval | None
    p_value: float | None
    better: str | None
    test: str


@dataclass(frozen=True)
class ABReport:
    control: VariantSummary
    candidate: VariantSummary
    comparisons: tuple[Comparison, ...]
    primary: str
    confidence: float
    winner: str | None
    summary: str


def ab_report(
    control: VariantData,
    candidate: VariantData,
    *,
    primary: str = "success-rate",
    confidence: float = 0.95,
    custom_better: Mapping[str, Better] | None = None,
) -> ABReport:
    """Compare two variants. `primary` is "success-rate", "latency" or a custom metric's name;
    `custom_better` says for each custom metric whether higher or lower is better (default higher)."""
    custom_better = dict(custom_better or {})
    alpha = 1 - confidence
    comparisons = [_compare_success(control, candidate, confidence)]
    comparisons.append(_compare_samples("latency", control, candidate, "lower", confidence, _latencies))
    for name in sorted(set(control.custom) | set(candidate.custom)):
        better = custom_better.get(name, "higher")
        comparisons.append(_compare_samples(name, control, candidate, better, confidence, _custom(name)))
    chosen = next((c for c in comparisons if c.metric == _ALIASES.get(primary, primary)), None)
    if chosen is None:
        known = ", ".join(c.metric for c in comparisons)
        raise ValueError(f"primary metric {primary!r} is not among the compared metrics ({known})")
    winner = chosen.better
    if chosen.p_value is None:
        summary = f"no data to compare on {primary}"
    elif winner is None:
        summary = f"no significant difference on {primary} (p={chosen.p_value:.3g}, alpha={alpha:.3g})"
    else:
        summary = f"{winner} wins on {primary} (p={chosen.p_value:.3g}, alpha={alpha:.3g})"
        loser = candidate.name if winner == control.name else control.name
        worse = [c.metric for c in comparisons if c is not chosen and c.better == loser]
        if worse:
            summary += f"; but {winner} is significantly worse on {', '.join(worse)}"
    return ABReport(
        control=_summarise(control, confidence),
        candidate=_summarise(candidate, confidence),
        comparisons=tuple(comparisons),
        primary=primary,
        confidence=confidence,
        winner=winner,
        summary=summary,
    )


# Builtin metric names of the spec's winnerBy, and the comparison that answers each: error rate is
# the complement of success rate; every latency figure is judged on the latency samples.
_ALIASES = {
    "error-rate": "success-rate",
    "latency-p50": "latency",
    "latency-p90": "latency",
    "latency-p95": "latency",
    "latency-p99": "latency",
    "latency-mean": "latency",
}


def ab_report_by(winner_by: WinnerBy, control: VariantData, candidate: VariantData) -> ABReport:
    """The report with the winner chosen as an ABTest's `winnerBy` says."""
    custom = (
        {}
        if winner_by.metric in _ALIASES or winner_by.metric == "success-rate"
        else {winner_by.metric: winner_by.better}
    )
    return ab_report(
        control, candidate, primary=winner_by.metric, confidence=winner_by.confidence, custom_better=custom
    )


def _latencies(v: VariantData) -> Sequence[float]:
    return v.latencies_ms


def _custom(name: str) -> Callable[[VariantData], Sequence[float]]:
    def pick(v: VariantData) -> Sequence[float]:
        return v.custom.get(name, ())

    return pick


def _summarise(v: VariantData, confidence: float) -> VariantSummary:
    z = _z(confidence)
    if v.requests > 0:
        upper, lower = wilson_bounds(v.requests - v.errors, v.requests, z)
        success = Estimate(1 - v.errors / v.requests, (lower, upper), v.requests)
    else:
        success = Estimate(None, None, 0)
    lat = [x for x in v.latencies_ms if not math.isnan(x)]
    return VariantSummary(
        name=v.name,
        requests=v.requests,
        success_rate=success,
        latency_mean_ms=mean_estimate(lat, confidence),
        latency_p50_ms=quantile_estimate(lat, 0.5, confidence),
        latency_p95_ms=quantile_estimate(lat, 0.95, confidence),
        custom={k: mean_estimate([x for x in s if not math.isnan(x)], confidence) for k, s in v.custom.items()},
    )


def mean_estimate(samples: Sequence[float], confidence: float) -> Estimate:
    """Mean with a Student-t interval."""
    n = len(samples)
    if n == 0:
        return Estimate(None, None, 0)
    mean = sum(samples) / n
    if n == 1:
        return Estimate(mean, None, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in samples) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(mean, (mean - half, mean + half), n)


def quantile_estimate(samples: Sequence[float], q: float, confidence: float) -> Estimate:
    """Sample quantile with a distribution-free interval from order statistics (the ranks between
    which the true quantile lies with the given confidence, by the binomial distribution)."""
    n = len(samples)
    if n == 0:
        return Estimate(None, None, 0)
    ordered = sorted(samples)
    value = ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, q))
    hi = int(stats.binom.ppf(1 - alpha / 2, n, q))
    if lo < 1 or hi >= n:
        return Estimate(value, None, n)  # too few samples to bound this quantile
    return Estimate(value, (ordered[lo - 1], ordered[hi]), n)


def _compare_success(control: VariantData, candidate: VariantData, confidence: float) -> Comparison:
    n1, n2 = control.requests, candidate.requests
    if n1 == 0 or n2 == 0:
        return Comparison("success-rate", None, None, None, None, "two-proportion z-test")
    p1, p2 = 1 - control.errors / n1, 1 - candidate.errors / n2
    diff = p2 - p1
    pooled = 1 - (control.errors + candidate.errors) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se_pooled == 0 else float(2 * stats.norm.sf(abs(diff) / se_pooled))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    half = _z(confidence) * se
    better = _better(diff, p_value, confidence, "higher", control.name, candidate.name)
    return Comparison("success-rate", diff, (diff - half, diff + half), p_value, better, "two-proportion z-test")


def _compare_samples(
    metric: str,
    control: VariantData,
    candidate: VariantData,
    better_when: Better,
    confidence: float,
    pick: Callable[[VariantData], Sequence[float]],
) -> Comparison:
    a = [float(x) for x in pick(control) if not math.isnan(x)]
    b = [float(x) for x in pick(candidate) if not math.isnan(x)]
    test = "Mann-Whitney U; Welch interval of the difference of means"
    if len(a) < 2 or len(b) < 2:
        return Comparison(metric, None, None, None, None, test)
    p_value = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1)
    se = math.sqrt(va / len(a) + vb / len(b))
    diff = mb - ma
    interval: Interval | None = None
    if se > 0:
        dof = se**4 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
        half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
        interval = (diff - half, diff + half)
    better = _better(diff, p_value, confidence, better_when, control.name, candidate.name)
    return Comparison(metric, diff, interval, p_value, better, test)


def _better(
    diff: float, p_value: float, confidence: float, better_when: Better, control: str, candidate: str
) -> str | None:
    if p_value >= 1 - confidence or diff == 0:
        return None
    candidate_better = diff > 0 if better_when == "higher" else diff < 0
    return candidate if candidate_better else control


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


# --- shadow ----------------------------------------------------------------------------------------

MismatchKind = Literal["status", "header", "body"]
KINDS: tuple[MismatchKind, ...] = ("status", "header", "body")


@dataclass(frozen=True)
class ShadowComparison:
    """One mirrored request: the user's answer (from stable) against the shadow's. A None
    `shadow_status` means the shadow gave no answer (timeout, refused connection)."""

    method: str
    path: str
    primary_status: int
    shadow_status: int | None
    header_mismatches: tuple[str, ...] = ()
    body_mismatch: bool = False
    detail: str = ""

    def kinds(self) -> list[MismatchKind]:
        if self.shadow_status is None:
            return []
        found: list[MismatchKind] = []
        if self.primary_status != self.shadow_status:
            found.append("status")
        if self.header_mismatches:
            found.append("header")
        if self.body_mismatch:
            found.append("body")
        return found


@dataclass(frozen=True)
class MismatchRate:
    count: int
    rate: float | None
    interval: Interval | None


@dataclass(frozen=True)
class ShadowReport:
    mirrored: int
    compared: int
    unanswered: int
    mismatches: Mapping[MismatchKind, MismatchRate]
    any_mismatch: MismatchRate
    samples: Mapping[MismatchKind, tuple[ShadowComparison, ...]]
    summary: str
    by_header: Mapping[str, int] = field(default_factory=dict)


class ShadowTally:
    """Counts comparisons as they arrive and keeps the first `samples_per_kind` of each kind of
    mismatch, so memory stays bounded however long the shadow runs."""

    def __init__(self, samples_per_kind: int = 5) -> None:
        self.samples_per_kind = samples_per_kind
        self.mirrored = 0
        self.unanswered = 0
        self.any_mismatch = 0
        self.counts: dict[MismatchKind, int] = dict.fromkeys(KINDS, 0)
        self.samples: dict[MismatchKind, list[ShadowComparison]] = {k: [] for k in KINDS}

    def add(self, comparison: ShadowComparison) -> None:
        self.mirrored += 1
        if comparison.shadow_status is None:
            self.unanswered += 1
            return
        kinds = comparison.kinds()
        if kinds:
            self.any_mismatch += 1
        for kind in kinds:
            self.counts[kind] += 1
            if len(self.samples[kind]) < self.samples_per_kind:
                self.samples[kind].append(comparison)

    def report(self, confidence: float = 0.95) -> ShadowReport:
        return shadow_report(
            mirrored=self.mirrored,
            unanswered=self.unanswered,
            mismatches={str(k): v for k, v in self.counts.items()},
            any_mismatch=self.any_mismatch,
            samples=self.samples,
            confidence=confidence,
        )


def shadow_report(
    *,
    mirrored: int,
    unanswered: int,
    mismatches: Mapping[str, int],
    any_mismatch: int,
    samples: Mapping[MismatchKind, Sequence[ShadowComparison]] | None = None,
    confidence: float = 0.95,
) -> ShadowReport:
    """The report from counts kept elsewhere (e.g. the proxy's mirror counters). Keys of
    `mismatches` are "status", "body", "header" or "header:<name>"; per-header counts are added up
    under "header" and kept apart in `by_header`."""
    compared = mirrored - unanswered
    z = _z(confidence)
    counts: dict[MismatchKind, int] = dict.fromkeys(KINDS, 0)
    by_header: dict[str, int] = {}
    for key, n in mismatches.items():
        kind, _, name = key.partition(":")
        if kind not in counts:
            raise ValueError(f"unknown mismatch kind {key!r} (known: status, header, header:<name>, body)")
        counts[kind] += n
        if name:
            by_header[name] = by_header.get(name, 0) + n

    def rate(count: int) -> MismatchRate:
        if compared == 0:
            return MismatchRate(count, None, None)
        upper, lower = wilson_bounds(count, compared, z)
        return MismatchRate(count, count / compared, (lower, upper))

    rates = {k: rate(counts[k]) for k in KINDS}
    if compared == 0:
        summary = f"no mirrored request was answered by the shadow ({mirrored} mirrored)"
    else:
        parts = ", ".join(f"{k} {100 * (rates[k].rate or 0):.2f}%" for k in KINDS)
        summary = f"{compared} of {mirrored} mirrored requests compared; mismatches: {parts}"
        if unanswered:
            summary += f"; {unanswered} unanswered by the shadow"
    return ShadowReport(
        mirrored=mirrored,
        compared=compared,
        unanswered=unanswered,
        mismatches=rates,
        any_mismatch=rate(any_mismatch),
        samples={k: tuple((samples or {}).get(k, ())) for k in KINDS},
        summary=summary,
        by_header=by_header,
    )
