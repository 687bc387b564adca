"""The engine's inputs besides the Rollout (observed state, verdicts, commands) and its output, the
plan. Plain frozen dataclasses: a platform builds the inputs from what it sees and carries out the
plan; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from rollwise.spec.match import RouteMatch
from rollwise.spec.status import RolloutStatus, RunKind, RunVerdict
from rollwise.spec.strategies.abtest import StickyKey, WinnerBy
from rollwise.spec.strategies.canary import DynamicWeighting
from rollwise.spec.strategies.shadow import ShadowCompare

Verdict = RunVerdict
FINAL_VERDICTS: frozenset[Verdict] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})

Verb = Literal["promote", "promoteFull", "abort", "retry", "pause", "resume", "undo", "hold"]


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionObserved:
    """One revision as the platform sees it. `desired` is what the platform was last told to run,
    `ready` passes its readiness probe, `available` has been ready for minReadySeconds, `existing`
    counts every replica present in any state (starting, ready, terminating)."""

    desired: int = 0
    ready: int = 0
    available: int = 0
    existing: int | None = None
    crash_looping: bool = False

    @property
    def present(self) -> int:
        if self.existing is not None:
            return self.existing
        return max(self.desired, self.ready, self.available)


NOTHING = RevisionObserved()


@dataclass(frozen=True)
class Observed:
    """What the platform sees. `config_hashes` are content hashes of the config the workload
    references (see `revision.referenced_config`), keyed like "ConfigMap/app-config"; they are part
    of the revision name, so a config change is a new revision."""

    revisions: Mapping[str, RevisionObserved] = field(default_factory=dict)
    config_hashes: Mapping[str, str] = field(default_factory=dict)

    def of(self, revision: str | None) -> RevisionObserved:
        if revision is None:
            return NOTHING
        return self.revisions.get(revision, NOTHING)


@dataclass(frozen=True)
class Command:
    """A user's verb. `to_revision` is undo's revision number (default: the previous revision).
    `hold` is the platform's, not a user's: its router could not put the plan's routes in force, so
    nothing may advance past them (pause reason RouterFailed) until resume or promote; it is not
    recorded as the last command."""

    verb: Verb
    to_revision: int | None = None

    def __str__(self) -> str:
        if self.verb == "promoteFull":
            return "promote --full"
        if self.verb == "undo" and self.to_revision is not None:
            return f"undo --to-revision {self.to_revision}"
        return self.verb


# --- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchRoute:
    """Requests satisfying any of `matches` go to `revision`, before weights are applied."""

    name: str
    revision: str
    matches: tuple[RouteMatch, ...]


@dataclass(frozen=True)
class MirrorRoute:
    """A copy of `percent` of the requests (those satisfying `matches`, or all) goes to `revision`;
    the copies' responses are discarded."""

    name: str
    revision: str
    percent: int
    matches: tuple[RouteMatch, ...] = ()


@dataclass(frozen=True)
class RouteTable:
    """Integer weights per revision summing to 100 (empty only when no revision has a ready replica:
    nothing can serve), match routes evaluated first, mirrors. With `sticky_by`, the weights split
    users rather than requests. `preview` is the revision the preview service selects (blue-green)."""

    weights: Mapping[str, int]
    matches: tuple[MatchRoute, ...] = ()
    mirrors: tuple[MirrorRoute, ...] = ()
    sticky_by: StickyKey | None = None
    preview: str | None = None

    def routed(self) -> set[str]:
        """Every revision that receives user requests (by weight or by match)."""
        return {r for r, w in self.weights.items() if w > 0} | {m.revision for m in self.matches}


@dataclass(frozen=True)
class AnalysisRunRequest:
    """An analysis run that must be running: which templates, why, for which revision (compared
    with `stable_revision`), with which arguments (None when a fieldRef names nothing in the
    rollout). Some runs are judgements rather than templates, and carry what they judge by:
    `dynamic` (a dynamic canary's interval: Successful raises, Inconclusive holds, Failed aborts),
    `winner_by` (an A/B verdict: Successful = the candidate wins, Failed = the control wins,
    Inconclusive = no winner), `compare` (shadow replies: Failed = too many mismatches)."""

    name: str
    kind: RunKind
    step: int | None
    revision: str
    stable_revision: str | None
    templates: tuple[tuple[str, bool], ...]  # (templateName, clusterScope)
    args: tuple[tuple[str, str | None], ...]
    dynamic: DynamicWeighting | None = None
    winner_by: WinnerBy | None = None
    compare: ShadowCompare | None = None


@dataclass(frozen=True)
class Plan:
    """What the platform must make true. `replicas` names every revision that must exist (0 =
    scaled down, kept); a revision named there but unknown to the platform is `revision`, created
    from the rollout's current workload. Revisions outside `retained_revisions` may be deleted.
    `analysis` lists the runs that must be running; `start_runs` and `stop_runs` are the difference
    from the runs the platform reported. Reconcile again after `requeue_after` seconds, or sooner
    when anything observed changes."""

    revision: str
    replicas: Mapping[str, int]
    routes: RouteTable
    status: RolloutStatus
    analysis: tuple[AnalysisRunRequest, ...]
    start_runs: tuple[str, ...]
    stop_runs: tuple[str, ...]
    requeue_after: float | None
    min_ready_seconds: int
    retained_revisions: tuple[str, ...]
