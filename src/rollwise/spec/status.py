"""What a Rollout reports. Written by the platforms from the engine's plan; read by users and by
the engine itself, since everything the engine must remember lives here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rollwise.spec.common import NonNegativeInt, Spec, Weight
from rollwise.spec.workload import OpenObject

Phase = Literal["Progressing", "Paused", "Healthy", "Degraded", "Aborted"]


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


class Completion(Spec):
    result: Literal["promoted", "aborted", "rolledBack", "fastTracked"]
    revision: str
    started_at: str | None = Field(default=None, alias="startedAt")
    finished_at: str = Field(alias="finishedAt")
    message: str | None = None


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
    engine: OpenObject | None = Field(
        default=None, description="The engine's own memory between reconciles; not an interface."
    )

    def engine_state(self) -> dict[str, Any]:
        return dict(self.engine or {})
