from __future__ import annotations

from pydantic import Field

from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import DnsLabel, Duration, MirrorPercent, NonNegativeInt, Spec
from rollwise.spec.steps import CanaryStep
from rollwise.spec.traffic import TrafficRouting


class ShadowCompare(Spec):
    """How mirrored responses are compared with the ones users received. Only a router that sees
    both answers can compare them (the local proxy); Envoy-based routers discard mirrored replies."""

    status: bool = True
    headers: list[str] | None = Field(default=None, description="Response headers that must match.")
    body: bool = True
    ignore_body_paths: list[str] | None = Field(
        default=None,
        alias="ignoreBodyPaths",
        description="JSON paths (e.g. $.timestamp, $.items[*].id) left out of the body comparison.",
    )
    max_mismatch_rate: float = Field(
        default=0.01,
        alias="maxMismatchRate",
        ge=0,
        le=1,
        description="Share of compared responses allowed to differ before the shadow phase fails.",
    )


class ShadowPromotion(Spec):
    """What follows a passed shadow phase: an instant switch (no steps) or these canary steps."""

    steps: list[CanaryStep] | None = None


class ShadowStrategy(Spec):
    """The new revision receives a copy of live traffic and serves no user; its responses are
    compared with the stable revision's, then it is promoted after `duration` and analysis."""

    mirror_percent: MirrorPercent = Field(default=100, alias="mirrorPercent")
    duration: Duration
    compare: ShadowCompare | None = Field(
        default=None, description="Compare mirrored responses with the primary's; absent: judge by analysis only."
    )
    analysis: RolloutAnalysis | None = None
    traffic_routing: TrafficRouting = Field(alias="trafficRouting")
    stable_service: DnsLabel | None = Field(default=None, alias="stableService")
    canary_service: DnsLabel | None = Field(default=None, alias="canaryService")
    promotion: ShadowPromotion = Field(default_factory=ShadowPromotion)
    scale_down_delay_seconds: NonNegativeInt = Field(
        default=30,
        alias="scaleDownDelaySeconds",
        description="After promotion the former stable revision stays up this long (routers converge; an "
        "undo meanwhile is instant), then scales down. 0: at once.",
    )
