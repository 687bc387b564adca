from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import DnsLabel, Duration, NonNegativeInt, Percent, PositiveInt, Spec
from rollwise.spec.match import RouteMatch
from rollwise.spec.traffic import TrafficRouting


class Variant(Spec):
    """One arm of the experiment. `control` is served by the stable revision, `candidate` by the new
    one. Requests satisfying `match` go to this variant first; of the rest, `weight` percent of users
    (sticky, keyed by `stickyBy`) do."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    role: Literal["control", "candidate"]
    match: list[RouteMatch] | None = None
    weight: Percent | None = None


class StickyKey(Spec):
    """Which request attribute identifies a user for sticky assignment (a cookie is set when the
    chosen cookie is absent)."""

    exactly_one_of = ("cookie", "header")

    cookie: str | None = None
    header: str | None = None


class WinnerBy(Spec):
    """How the verdict picks a winner: compare this metric between the variants at a confidence
    level. `metric` is a builtin metric (success-rate, latency-p99, ...) or the name of a metric in
    the referenced analysis templates, measured per variant."""

    metric: str = Field(min_length=1)
    better: Literal["higher", "lower"]
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    min_samples: PositiveInt = Field(
        default=200, alias="minSamples", description="Requests per variant before any verdict."
    )


class ABTestStrategy(Spec):
    variants: list[Variant] = Field(min_length=2, max_length=2)
    sticky_by: StickyKey = Field(default_factory=lambda: StickyKey(cookie="rollwise-variant"), alias="stickyBy")
    duration: Duration
    winner_by: WinnerBy | None = Field(
        default=None, alias="winnerBy", description="Without it there is no winner: onNoWinner decides."
    )
    analysis: RolloutAnalysis | None = Field(
        default=None, description="Guardrails on the candidate: a failed run aborts the test."
    )
    traffic_routing: TrafficRouting = Field(alias="trafficRouting")
    stable_service: DnsLabel | None = Field(default=None, alias="stableService")
    canary_service: DnsLabel | None = Field(default=None, alias="canaryService")
    on_no_winner: Literal["keepControl", "promoteCandidate"] = Field(
        default="keepControl",
        alias="onNoWinner",
        description="What happens when the verdict finds no difference.",
    )
    scale_down_delay_seconds: NonNegativeInt = Field(
        default=30,
        alias="scaleDownDelaySeconds",
        description="After promotion the control (the former stable revision) stays up this long (routers converge; an "
        "undo meanwhile is instant), then scales down. 0: at once.",
    )
