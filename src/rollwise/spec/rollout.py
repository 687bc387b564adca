from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from rollwise.spec.common import (
    API_VERSION,
    ApiVersion,
    DnsSubdomain,
    LabelSelector,
    NonNegativeInt,
    ObjectMeta,
    PositiveInt,
    Spec,
)
from rollwise.spec.status import RolloutStatus
from rollwise.spec.strategy import Strategy
from rollwise.spec.workload import ImmutablePolicy, PodTemplate, ProcessTemplate, WorkloadRef


class FeatureFlagsRef(Spec):
    """Give every replica the flags of a FlagSet as a flagd document it can read and re-read: a
    file on the local platform, a mounted ConfigMap on Kubernetes. The default variable is the one
    the OpenFeature flagd provider reads in file mode, so an app needs no Rollwise code."""

    flag_set: DnsSubdomain = Field(alias="flagSet")
    file_env: str = Field(
        default="FLAGD_OFFLINE_FLAG_SOURCE_PATH", alias="fileEnv", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    mount_path: str = Field(default="/etc/rollwise/flags", alias="mountPath", pattern=r"^/")


class LocalListener(Spec):
    """Local platform only: where Rollwise's proxy listens for this rollout on 127.0.0.1. Absent
    ports are chosen free and shown by `rollwise get`. Changing them starts no new revision."""

    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    preview_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, alias="previewPort", description="Blue-green preview (and A/B candidate) listener."
    )


class RolloutSpec(Spec):
    exactly_one_of = ("template", "process", "workload_ref")

    replicas: NonNegativeInt = 1
    selector: LabelSelector | None = None
    template: PodTemplate | None = None
    process: ProcessTemplate | None = None
    workload_ref: WorkloadRef | None = Field(default=None, alias="workloadRef")
    strategy: Strategy
    min_ready_seconds: NonNegativeInt = Field(default=0, alias="minReadySeconds")
    revision_history_limit: NonNegativeInt = Field(default=10, alias="revisionHistoryLimit")
    progress_deadline_seconds: PositiveInt = Field(default=600, alias="progressDeadlineSeconds")
    progress_deadline_abort: bool = Field(default=False, alias="progressDeadlineAbort")
    paused: bool = False
    immutable: ImmutablePolicy = Field(default_factory=ImmutablePolicy)
    feature_flags: FeatureFlagsRef | None = Field(default=None, alias="featureFlags")
    listen: LocalListener | None = None


class Rollout(Spec):
    api_version: ApiVersion = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: RolloutSpec
    status: RolloutStatus | None = None
