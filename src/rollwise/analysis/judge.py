"""Canary-vs-baseline judgement in the spirit of Kayenta's NetflixACAJudge.

Per metric, the canary's samples (one per measurement interval: an error rate, a p95, ...) are
compared with the baseline's by the Mann-Whitney U test, which assumes no distribution; a metric
is classified High or Low only when the difference is both significant at `confidence` and larger
than the allowed relative effect. Significance alone is not enough: with many samples a 0.1%
change is significant and harmless; effect size alone is not enough: with few samples a large
difference can be noise.

The score is the weighted share of metrics that pass, over the metrics that had data. A critical
metric that fails fails the run alone. Score >= pass is Successful, >= marginal Inconclusive (a
human decides), below marginal Failed. No metric with data is Inconclusive, never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from scipy import stats  # type: ignore[import-untyped]

from rollwise.spec.analysis import Verdict

Direction = Literal["increase", "decrease", "either"]
Classification = Literal["Pass", "High", "Low", "NoData"]


@dataclass(frozen=True)
class MetricCriteria:
    """How one metric is judged. `direction` names the harmful change ("increase" for errors and
    latency, "decrease" for success rate and throughput); `allowed_effect` is the relative change
    of the mean still accepted (0.1 = 10%)."""

    name: str
    direction: Direction = "either"
    allowed_effect: float = 0.1
    critical: bool = False
    weight: float = 1.0
    min_samples: int = 5


@dataclass(frozen=True)
class JudgeSettings:
    confidence: float = 0.95
    pass_score: float = 95.0
    marginal_score: float = 75.0

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1 (got {self.confidence})")
        if not 0 <= self.marginal_score <= self.pass_score <= 100:
            raise ValueError("need 0 <= marginal score <= pass score <= 100")


@dataclass(frozen=True)
class MetricJudgement:
    name: str
    classification: Classification
    harmful: bool
    reason: str
    canary_mean: float | None = None
    baseline_mean: float | None = None
    effect: float | None = None
    u_statistic: float | None = None
    p_value: float | None = None
    critical: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    score: float | None
    reason: str
    metrics: tuple[MetricJudgement, ...] = field(default_factory=tuple)


def relative_effect(canary_mean: float, baseline_mean: float) -> float:
    """(canary - baseline) / |baseline|; ±inf when the baseline is 0 and the canary is not."""
    diff = canary_mean - baseline_mean
    if baseline_mean == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / abs(baseline_mean)


def judge_metric(
    criteria: MetricCriteria, canary: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> MetricJudgement:
    # NaN samples are intervals without data; they are dropped (Kayenta's "remove"), never zeroed.
    c = [float(x) for x in canary if not math.isnan(x)]
    b = [float(x) for x in baseline if not math.isnan(x)]
    if len(c) < criteria.min_samples or len(b) < criteria.min_samples:
        return MetricJudgement(
            name=criteria.name,
            critical=criteria.critical,
            weight=criteria.weight,
            classification="NoData",
            harmful=False,
            reason=f"too few samples to compare (canary {len(c)}, baseline {len(b)}, need {criteria.min_samples} each)",
        )
    c_mean, b_mean = sum(c) / len(c), sum(b) / len(b)
    effect = relative_effect(c_mean, b_mean)
    alternative = {"increase": "greater", "decrease": "less", "either": "two-sided"}[criteria.direction]
    test = stats.mannwhitneyu(c, b, alternative=alternative, method="auto")
    u, p = float(test.statistic), float(test.pvalue)
    significant = p < 1 - confidence
    large = abs(effect) > criteria.allowed_effect
    classification: Classification = "Pass"
    if significant and large:
        classification = "High" if effect > 0 else "Low"
    harmful = (classification == "High" and criteria.direction in ("increase", "either")) or (
        classification == "Low" and criteria.direction in ("decrease", "either")
    )
    if classification == "Pass":
        classification_reason = (
            "no significant difference"
            if not significant
            else f"difference within the allowed {criteria.allowed_effect:.0%}"
        )
    else:
        what = "higher" if classification == "High" else "lower"
        classification_reason = f"canary is {what} than baseline{'' if harmful else ', in the harmless direction'}"
    reason = (
        f"{classification_reason} (canary mean {c_mean:.6g}, baseline mean {b_mean:.6g}, effect {_pct(effect)}, "
        f"Mann-Whitney U={u:.6g}, p={p:.3g}, alpha={1 - confidence:.3g})"
    )
    return MetricJudgement(
        name=criteria.name,
        critical=criteria.critical,
        weight=criteria.weight,
        classification=classification,
        harmful=harmful,
        reason=reason,
        canary_mean=c_mean,
        baseline_mean=b_mean,
        effect=effect,
        u_statistic=u,
        p_value=p,
    )


def judge(
    samples: Sequence[tuple[MetricCriteria, Sequence[float], Sequence[float]]],
    settings: JudgeSettings | None = None,
) -> Judgement:
    """Judge every metric and score the run."""
    settings = settings or JudgeSettings()
    judged = tuple(judge_metric(cr, c, b, settings.confidence) for cr, c, b in samples)
    critical = [j for j in judged if j.critical and j.harmful]
    if critical:
        names = ", ".join(repr(j.name) for j in critical)
        return Judgement("Failed", 0.0, f"critical metric {names} failed: {critical[0].reason}", judged)
    with_data = [j for j in judged if j.classification != "NoData"]
    if not with_data:
        return Judgement("Inconclusive", None, "no metric had enough data to compare", judged)
    total = sum(j.weight for j in with_data)
    passed = sum(j.weight for j in with_data if not j.harmful)
    score = 100.0 * passed / total if total > 0 else 0.0
    failing = [j.name for j in with_data if j.harmful]
    nodata = [j.name for j in judged if j.classification == "NoData"]
    detail = f"score {score:.1f} (pass {settings.pass_score:g}, marginal {settings.marginal_score:g})"
    if failing:
        detail += f"; failing: {', '.join(failing)}"
    if nodata:
        detail += f"; without data (not scored): {', '.join(nodata)}"
    if score >= settings.pass_score:
        return Judgement("Successful", score, detail, judged)
    if score >= settings.marginal_score:
        return Judgement("Inconclusive", score, f"marginal: {detail}", judged)
    return Judgement("Failed", score, detail, judged)


def _pct(effect: float) -> str:
    if math.isinf(effect):
        return "+inf" if effect > 0 else "-inf"
    return f"{effect:+.1%}"
