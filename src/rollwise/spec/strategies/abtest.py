from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import DnsLabel, Duration, Percent, Spec
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


class ABTestStrategy(Spec):
    variants: list[Variant] = Field(min_length=2, max_length=2)
    sticky_by: StickyKey = Field(default_factory=lambda: StickyKey(cookie="rollwise-variant"), alias="stickyBy")
    duration: Duration
    analysis: RolloutAnalysis | None = None
    traffic_routing: TrafficRouting = Field(alias="trafficRouting")
    stable_service: DnsLabel | None = Field(default=None, alias="stableService")
    canary_service: DnsLabel | None = Field(default=None, alias="canaryService")
    on_no_winner: Literal["keepControl", "promoteCandidate"] = Field(
        default="keepControl",
        alias="onNoWinner",
        description="What happens when the verdict finds no difference.",
    )
