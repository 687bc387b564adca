"""The Rollwise resource models (apiVersion rollwise.dev/v1alpha1), their loading and lint."""

from rollwise.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.spec.common import API_GROUP, API_VERSION
from rollwise.spec.flags import FlagSet
from rollwise.spec.rollout import Rollout

Resource = Rollout | AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun | FlagSet

KINDS: dict[str, type[Rollout | AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun | FlagSet]] = {
    "Rollout": Rollout,
    "AnalysisTemplate": AnalysisTemplate,
    "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
    "AnalysisRun": AnalysisRun,
    "FlagSet": FlagSet,
}

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KINDS",
    "AnalysisRun",
    "AnalysisTemplate",
    "ClusterAnalysisTemplate",
    "FlagSet",
    "Resource",
    "Rollout",
]
