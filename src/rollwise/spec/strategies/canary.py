from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.analysis_ref import BackgroundAnalysis, RolloutAnalysis
from rollwise.spec.common import DnsLabel, Duration, IntOrPercent, NonNegativeInt, PositiveInt, Spec, Weight
from rollwise.spec.steps import CanaryStep
from rollwise.spec.traffic import TrafficRouting


class AbortPolicy(Spec):
    """What an abort does to traffic: `instant` sends 100% to stable in the same plan, `gradual`
    steps the canary's weight back down, `freeze` holds the current weights and waits for a human."""

    mode: Literal["instant", "gradual", "freeze"] = "instant"
    step_weight: Weight = Field(default=20, alias="stepWeight", description="Weight removed per gradual step.")
    interval: Duration = Field(default="10s", description="Time between gradual steps.")


class RiskLevels(Spec):
    """Error rates of the sequential decision: `falsePromotion` is the accepted chance of raising
    the weight of a harmful canary, `falseRollback` that of aborting a healthy one."""

    false_promotion: float = Field(default=0.05, alias="falsePromotion", gt=0, lt=0.5)
    false_rollback: float = Field(default=0.05, alias="falseRollback", gt=0, lt=0.5)
    tolerance: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Smallest increase of the canary's error rate over stable's that counts as harm "
        "(0.01 = 1 point); healthy means no worse than stable.",
    )


class DynamicWeighting(Spec):
    """Metric-driven weighting: instead of fixed steps, the weight rises while evidence of health
    accumulates, holds while the evidence is unsure, and the rollout aborts as soon as evidence of
    harm crosses the bar set by `risk`."""

    min_step_weight: Weight = Field(default=5, alias="minStepWeight")
    max_step_weight: Weight = Field(default=50, alias="maxStepWeight")
    start_weight: Weight = Field(default=5, alias="startWeight")
    max_weight: Weight = Field(default=100, alias="maxWeight", description="Weight at which the canary is promoted.")
    velocity: Literal["linear", "exponential"] = Field(
        default="exponential",
        description="How steps grow while evidence of health accumulates: linear adds minStepWeight per "
        "healthy interval; exponential doubles the step each healthy interval. Both stay within "
        "[minStepWeight, maxStepWeight].",
    )
    interval: Duration = "30s"
    min_samples: PositiveInt = Field(
        default=100, alias="minSamples", description="Requests the canary must serve before any decision."
    )
    risk: RiskLevels = Field(default_factory=RiskLevels)
    analysis: RolloutAnalysis | None = None


class CanaryStrategy(Spec):
    """Shift traffic to the new revision in steps (or by `dynamic` weighting), with analysis."""

    steps: list[CanaryStep] | None = None
    dynamic: DynamicWeighting | None = None
    max_surge: IntOrPercent = Field(default="25%", alias="maxSurge")
    max_unavailable: IntOrPercent = Field(default=0, alias="maxUnavailable")
    stable_service: DnsLabel | None = Field(default=None, alias="stableService")
    canary_service: DnsLabel | None = Field(default=None, alias="canaryService")
    traffic_routing: TrafficRouting | None = Field(default=None, alias="trafficRouting")
    scale_down_delay_seconds: NonNegativeInt = Field(
        default=30,
        alias="scaleDownDelaySeconds",
        description="After promotion the former stable revision stays up this long (routers converge; an "
        "undo meanwhile is instant), then scales down. 0: at once."
        " Only with trafficRouting: without a router the old revision shrinks as the canary grows.",
    )
    abort_scale_down_delay_seconds: NonNegativeInt | None = Field(
        default=None,
        alias="abortScaleDownDelaySeconds",
        description="After an instant abort (all traffic back on stable at once) the canary's replicas stay "
        "up this long, out of traffic (requests in flight finish; the failing version can be inspected), then "
        "scale down. Unset: at once. 0: kept up until retry, undo or a new spec. Only with trafficRouting.",
    )
    analysis: BackgroundAnalysis | None = None
    abort: AbortPolicy = Field(default_factory=AbortPolicy)
    allow_decreasing_weights: bool = Field(
        default=False,
        alias="allowDecreasingWeights",
        description="Permit a setWeight lower than an earlier one (otherwise a lint error: usually a typo).",
    )
