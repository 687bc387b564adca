"""Names the controller, its routers and the CLI agree on (see the contract in docs/kubernetes.md),
and the lightkube classes of Rollwise's own custom resources."""

from __future__ import annotations

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

FIELD_MANAGER = "rollwise"
GROUP = "rollwise.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
REVISION_LABEL = "rollwise.dev/revision"
ROLLOUT_LABEL = "rollwise.dev/rollout"
COMMAND_ANNOTATION = "rollwise.dev/command"
COMPONENT = "rollwise-controller"

Rollout = create_namespaced_resource(GROUP, VERSION, "Rollout", "rollouts")
AnalysisTemplate = create_namespaced_resource(GROUP, VERSION, "AnalysisTemplate", "analysistemplates")
ClusterAnalysisTemplate = create_global_resource(GROUP, VERSION, "ClusterAnalysisTemplate", "clusteranalysistemplates")
FlagSet = create_namespaced_resource(GROUP, VERSION, "FlagSet", "flagsets")


def replicaset_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"
