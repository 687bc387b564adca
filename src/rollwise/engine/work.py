"""The engine's working memory during one reconcile: read from the last status, changed by the
strategy, written back into the new status. Times are datetimes here and strings in the status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rollwise.engine.clock import parse, stamp
from rollwise.engine.plan import Observed, RevisionObserved, Verdict
from rollwise.spec.rollout import Rollout, RolloutSpec
from rollwise.spec.status import (
    AbortState,
    AnalysisRecord,
    BlueGreenStatus,
    CommandRecord,
    Completion,
    Condition,
    DowntimeWindow,
    DynamicStatus,
    RevisionRecord,
    RolloutStatus,
    UndoState,
)

# Pauses the engine itself sets and clears; a user's pause and the spec's survive them.
USER_PAUSE = "UserPause"
SPEC_PAUSE = "PausedBySpec"
STEP_PAUSE = "CanaryPauseStep"
INCONCLUSIVE_PAUSE = "InconclusiveAnalysis"
ERROR_PAUSE = "AnalysisError"
BLUE_GREEN_PAUSE = "BlueGreenPause"
FROZEN_PAUSE = "AbortFrozen"
# Set by the platform (a `hold` command) when the routes a plan asks for could not be put in force;
# lifted by resume or promote, as a user's pause is.
ROUTER_PAUSE = "RouterFailed"
ENGINE_PAUSES = frozenset({STEP_PAUSE, INCONCLUSIVE_PAUSE, ERROR_PAUSE, BLUE_GREEN_PAUSE, FROZEN_PAUSE})
# Verdicts that stop nothing and prove nothing: a human decides (never promote without evidence).
UNSURE_PAUSES = (INCONCLUSIVE_PAUSE, ERROR_PAUSE)


@dataclass
class Work:
    current: str | None = None
    stable: str | None = None
    spec_revision: str | None = None
    step: int | None = None
    step_started_at: datetime | None = None
    update_started_at: datetime | None = None
    stage: str | None = None
    stage_started_at: datetime | None = None
    attempt: int = 0
    abort: AbortState | None = None
    pauses: dict[str, datetime] = field(default_factory=dict)
    canary_weight: int | None = None
    history: list[RevisionRecord] = field(default_factory=list)
    completion: Completion | None = None
    blue_green: BlueGreenStatus | None = None
    runs: list[AnalysisRecord] = field(default_factory=list)
    dynamic: DynamicStatus | None = None
    downtime: DowntimeWindow | None = None
    undo: UndoState | None = None
    last_command: CommandRecord | None = None
    progress_since: datetime | None = None
    progress_mark: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    engine: dict[str, Any] | None = None

    @classmethod
    def load(cls, status: RolloutStatus | None) -> Work:
        if status is None:
            return cls()
        pauses: dict[str, datetime] = {}
        for p in status.pause_conditions or []:
            start = parse(p.start_time)
            assert start is not None
            pauses[p.reason] = start
        return cls(
            current=status.current_revision,
            stable=status.stable_revision,
            spec_revision=status.spec_revision,
            step=status.current_step_index,
            step_started_at=parse(status.step_started_at),
            update_started_at=parse(status.update_started_at),
            stage=status.stage,
            stage_started_at=parse(status.stage_started_at),
            attempt=status.attempt,
            abort=status.abort,
            pauses=pauses,
            canary_weight=status.canary_weight,
            history=list(status.history or []),
            completion=status.last_completion,
            blue_green=status.blue_green,
            runs=list(status.analysis_runs or []),
            dynamic=status.dynamic,
            downtime=status.downtime,
            undo=status.undo,
            last_command=status.last_command,
            progress_since=parse(status.progress_since),
            progress_mark=status.progress_mark,
            conditions=list(status.conditions or []),
            engine=dict(status.engine) if status.engine is not None else None,
        )

    @property
    def updating(self) -> bool:
        """An update is in progress: the revision to run is not (yet) the stable one."""
        return self.current is not None and self.current != self.stable

    def pause(self, reason: str, now: datetime) -> None:
        self.pauses.setdefault(reason, now)

    def unpause(self, *reasons: str) -> None:
        for reason in reasons:
            self.pauses.pop(reason, None)

    def record(self, revision: str) -> RevisionRecord | None:
        for r in self.history:
            if r.revision == revision:
                return r
        return None

    def stamp_or_none(self, t: datetime | None) -> str | None:
        return None if t is None else stamp(t)


@dataclass
class Ctx:
    """The inputs of one reconcile, plus what the strategies report besides the outcome."""

    rollout: Rollout
    observed: Observed
    now: datetime
    verdicts: Mapping[str, Verdict]
    promote: Literal["step", "full"] | None = None
    invalid: list[str] = field(default_factory=list)
    _rollout_dict: dict[str, Any] | None = None

    @property
    def spec(self) -> RolloutSpec:
        return self.rollout.spec

    @property
    def n(self) -> int:
        return int(self.rollout.spec.replicas)

    @property
    def name(self) -> str:
        return self.rollout.metadata.name

    def of(self, revision: str | None) -> RevisionObserved:
        return self.observed.of(revision)

    def ready(self, revision: str | None) -> int:
        return self.observed.of(revision).ready

    def available(self, revision: str | None) -> int:
        o = self.observed.of(revision)
        return min(o.available, o.ready)

    def fully_ready(self, revision: str | None, count: int) -> bool:
        """Every one of `count` replicas ready and available: the condition of any atomic switch."""
        return self.available(revision) >= count

    def rollout_dict(self) -> dict[str, Any]:
        if self._rollout_dict is None:
            self._rollout_dict = self.rollout.to_dict()
        return self._rollout_dict
