"""What a Rollout reports. Written by the platforms from the engine's plan; read by users and by
the engine itself, since everything the engine must remember lives here.

Times are RFC 3339 strings in UTC with microseconds, so that the engine reads back exactly the
instant it wrote (a restarted controller must reach the same decisions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rollwise.spec.common import NonNegativeInt, Spec, Weight
from rollwise.spec.workload import OpenObject

Phase = Literal["Progressing", "Paused", "Healthy", "Degraded", "Aborted"]
RunVerdict = Literal["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]
AbortMode = Literal["instant", "gradual", "freeze"]
RunKind = Literal[
    "step",
    "background",
    "prePromotion",
    "postPromotion",
    "shadow",
    "shadowCompare",
    "abTest",
    "abWinner",
    "dynamic",
    "gate",
]


class Condition(Spec):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")


class PauseCondition(Spec):
    reason: str
    start_time: str = Field(alias="startTime")


class RevisionWeight(Spec):
    revision: str
    weight: Weight


class RevisionRecord(Spec):
    revision: str
    number: NonNegativeInt
    created_at: str | None = Field(default=None, alias="createdAt")
    scale_down_at: str | None = Field(
        default=None,
        alias="scaleDownAt",
        description="A former stable revision stays scaled up until then, so an undo can switch back at once.",
    )


class Completion(Spec):
    result: Literal["promoted", "aborted", "rolledBack", "fastTracked"]
    revision: str
    started_at: str | None = Field(default=None, alias="startedAt")
    finished_at: str = Field(alias="finishedAt")
    message: str | None = None


class RevisionReplicas(Spec):
    """One revision as the last plan left it: its role, the replicas asked for and seen, its weight."""

    revision: str
    role: Literal["stable", "canary", "preview", "active", "old"]
    replicas: NonNegativeInt
    ready: NonNegativeInt = 0
    available: NonNegativeInt = 0
    weight: Weight = 0


class AbortState(Spec):
    revision: str = Field(description="The revision whose update was aborted.")
    reason: str
    message: str
    mode: AbortMode = "instant"
    at: str
    weight: Weight | None = Field(default=None, description="Gradual abort: the canary weight still routed.")
    next_step_at: str | None = Field(default=None, alias="nextStepAt", description="Gradual abort: next step down.")


class AnalysisRecord(Spec):
    """An analysis run the engine asked for, and the last verdict it saw for it."""

    name: str
    kind: RunKind
    step: NonNegativeInt | None = None
    revision: str
    verdict: RunVerdict = "Pending"
    accepted: bool = Field(default=False, description="A human promoted past this inconclusive verdict.")
    started_at: str = Field(alias="startedAt")


class BlueGreenStatus(Spec):
    active_revision: str | None = Field(default=None, alias="activeRevision")
    preview_revision: str | None = Field(default=None, alias="previewRevision")
    preview_ready_at: str | None = Field(
        default=None, alias="previewReadyAt", description="When every preview replica first became available."
    )
    approved: bool = Field(default=False, description="Promotion approved (by promote, or automatically).")
    skip_analysis: bool = Field(default=False, alias="skipAnalysis", description="Set by promote --full.")
    switched_at: str | None = Field(default=None, alias="switchedAt", description="When active moved to preview.")


class DynamicStatus(Spec):
    weight: Weight = Field(description="The canary weight the policy has reached.")
    step_weight: Weight = Field(alias="stepWeight", description="The size of the next raise.")
    raises: NonNegativeInt = Field(default=0, description="Consecutive raises (sets the velocity).")
    interval: NonNegativeInt = Field(default=0, description="Index of the current decision interval.")
    interval_started_at: str | None = Field(default=None, alias="intervalStartedAt")
    last_decision: str | None = Field(default=None, alias="lastDecision")


class DynamicEvidence(Spec):
    """Kubernetes: what a dynamic canary's finished intervals found (the sequential test's
    cumulative counts, stable's history and the latency threshold), which the next interval
    continues from; kept here so that a restarted controller continues with the same evidence.
    Fixed in size: one record per Rollout, for its current revision and attempt."""

    run: str = Field(description="The analysis runs it belongs to: `<rollout>-<revision>-<attempt>`.")
    interval: NonNegativeInt = Field(description="The last finished interval (its `dynamic.interval`).")
    counts: dict[str, NonNegativeInt] = Field(
        description="Cumulative requests, errors and slow requests of canary and stable, stable's history."
    )
    latency_threshold_ms: float | None = Field(
        default=None, alias="latencyThresholdMs", description="Stable's p95 before the canary, when known."
    )


class DowntimeWindow(Spec):
    """Recreate: the time during which no revision served, from the scale-down of the old revision
    to the first ready replica of the new one."""

    revision: str
    started_at: str = Field(alias="startedAt")
    ended_at: str | None = Field(default=None, alias="endedAt")
    seconds: float | None = None


class UndoState(Spec):
    """An undo in force: the rollout runs `revision` although the spec describes `specRevision`;
    editing the spec (a new revision) ends it."""

    revision: str
    number: NonNegativeInt
    spec_revision: str = Field(alias="specRevision")


class CommandRecord(Spec):
    command: str
    at: str
    accepted: bool
    message: str


class RolloutStatus(Spec):
    model_config = Spec.model_config | {"strict": False}

    phase: Phase | None = None
    message: str | None = None
    observed_generation: NonNegativeInt | None = Field(default=None, alias="observedGeneration")
    current_revision: str | None = Field(default=None, alias="currentRevision")
    stable_revision: str | None = Field(default=None, alias="stableRevision")
    current_step_index: NonNegativeInt | None = Field(default=None, alias="currentStepIndex")
    replicas: NonNegativeInt = 0
    updated_replicas: NonNegativeInt = Field(default=0, alias="updatedReplicas")
    ready_replicas: NonNegativeInt = Field(default=0, alias="readyReplicas")
    available_replicas: NonNegativeInt = Field(default=0, alias="availableReplicas")
    selector: str | None = Field(default=None, description="Label selector string, for the scale subresource.")
    weights: list[RevisionWeight] | None = None
    conditions: list[Condition] | None = None
    pause_conditions: list[PauseCondition] | None = Field(default=None, alias="pauseConditions")
    aborted: bool = False
    history: list[RevisionRecord] | None = None
    last_completion: Completion | None = Field(default=None, alias="lastCompletion")
    # The engine's memory, typed so that a user can read it too.
    spec_revision: str | None = Field(default=None, alias="specRevision")
    update_started_at: str | None = Field(default=None, alias="updateStartedAt")
    step_started_at: str | None = Field(default=None, alias="stepStartedAt")
    stage: str | None = Field(default=None, description="Where the strategy is: preview, mirroring, experiment...")
    canary_weight: Weight | None = Field(
        default=None,
        alias="canaryWeight",
        description="The weight the canary's steps have reached; routed while it has ready replicas.",
    )
    stage_started_at: str | None = Field(default=None, alias="stageStartedAt")
    attempt: NonNegativeInt = Field(default=0, description="Counts updates and retries; names analysis runs.")
    abort: AbortState | None = None
    analysis_runs: list[AnalysisRecord] | None = Field(default=None, alias="analysisRuns")
    blue_green: BlueGreenStatus | None = Field(default=None, alias="blueGreen")
    dynamic: DynamicStatus | None = None
    dynamic_evidence: DynamicEvidence | None = Field(default=None, alias="dynamicEvidence")
    downtime: DowntimeWindow | None = None
    undo: UndoState | None = None
    last_command: CommandRecord | None = Field(default=None, alias="lastCommand")
    handled_command: str | None = Field(
        default=None,
        alias="handledCommand",
        description="Kubernetes: the id of the last rollwise.dev/command annotation handed to the engine.",
    )
    progress_since: str | None = Field(
        default=None, alias="progressSince", description="Waiting for replicas without progress since then."
    )
    progress_mark: str | None = Field(default=None, alias="progressMark")
    revisions: list[RevisionReplicas] | None = None
    endpoints: dict[str, str] | None = Field(
        default=None, description="Where users reach the rollout (local platform: main and preview URLs)."
    )
    engine: OpenObject | None = Field(
        default=None, description="The engine's own memory between reconciles; not an interface."
    )

    def engine_state(self) -> dict[str, Any]:
        return dict(self.engine or {})
