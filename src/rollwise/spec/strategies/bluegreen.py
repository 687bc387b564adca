from __future__ import annotations

from pydantic import Field

from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import DnsLabel, NonNegativeInt, Spec


class BlueGreenStrategy(Spec):
    """Run the new revision beside the old one, reachable on the preview service; switch the active
    service atomically once every preview replica is ready and pre-promotion analysis passed."""

    active_service: DnsLabel | None = Field(
        default=None,
        alias="activeService",
        description="Service users reach; required on Kubernetes. The local proxy serves active on the rollout's port.",
    )
    preview_service: DnsLabel | None = Field(
        default=None,
        alias="previewService",
        description="Service reaching the preview revision before promotion (locally: a preview port).",
    )
    preview_replica_count: NonNegativeInt | None = Field(default=None, alias="previewReplicaCount")
    auto_promotion_enabled: bool = Field(default=True, alias="autoPromotionEnabled")
    auto_promotion_seconds: NonNegativeInt | None = Field(default=None, alias="autoPromotionSeconds")
    scale_down_delay_seconds: NonNegativeInt = Field(
        default=30,
        alias="scaleDownDelaySeconds",
        description="After promotion the former active revision stays up this long (an undo meanwhile is "
        "instant), then scales down. 0: at once.",
    )
    abort_scale_down_delay_seconds: NonNegativeInt | None = Field(
        default=None,
        alias="abortScaleDownDelaySeconds",
        description="After an abort the aborted revision (the preview, or the new active switched back from) "
        "stays up this long, then scales down. Unset: at once. 0: kept up until retry, undo or a new spec "
        "(as in Argo Rollouts).",
    )
    pre_promotion_analysis: RolloutAnalysis | None = Field(default=None, alias="prePromotionAnalysis")
    post_promotion_analysis: RolloutAnalysis | None = Field(default=None, alias="postPromotionAnalysis")
