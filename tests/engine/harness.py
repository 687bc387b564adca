"""A small in-memory platform for the engine's tests: it carries out plans the way a real one
would (replicas start, become ready after a delay, crash, drain and vanish), runs a simulated
clock, delivers analysis verdicts and user commands, and after every reconcile checks the
invariants that must always hold — including that a restarted engine, given only the status it
wrote, plans exactly the same."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rollwise.engine import (
    AnalysisRunRequest,
    Command,
    Observed,
    Plan,
    RevisionObserved,
    Verdict,
    reconcile,
)
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RolloutStatus

START = datetime(2030, 1, 1, tzinfo=UTC)

PodState = Literal["starting", "ready", "terminating"]


@dataclass
class Pod:
    state: PodState
    since: datetime
    ready_since: datetime | None = None


@dataclass
class Revision:
    pods: list[Pod] = field(default_factory=list)
    desired: int = 0
    crash: bool = False


@dataclass
class Run:
    request: AnalysisRunRequest
    started: datetime


def rollout(strategy: dict[str, Any], *, replicas: int = 4, version: int = 1, **spec: Any) -> Rollout:
    """A Rollout running a local process; `version` changes the workload, hence the revision."""
    return Rollout.model_validate(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "process": {"command": ["app", f"--version={version}"]},
                "strategy": strategy,
                **spec,
            },
        }
    )


class Platform:
    """Plays the platform. Replicas take `ready_after` seconds to become ready and `drain_after`
    seconds to go away; analysis runs end `analysis_after` seconds after they start with the
    verdict set in `outcomes` for their kind (or stay Running)."""

    def __init__(
        self,
        ro: Rollout,
        *,
        ready_after: float = 2.0,
        drain_after: float = 1.0,
        analysis_after: float = 5.0,
        outcomes: dict[str, Verdict] | None = None,
        check_restart: bool = True,
    ) -> None:
        self.rollout = ro
        self.now = START
        self.ready_after = timedelta(seconds=ready_after)
        self.drain_after = timedelta(seconds=drain_after)
        self.analysis_after = timedelta(seconds=analysis_after)
        self.outcomes: dict[str, Verdict] = dict(outcomes or {})
        self.revisions: dict[str, Revision] = {}
        self.verdicts: dict[str, Verdict] = {}
        self.runs: dict[str, Run] = {}
        self.config_hashes: dict[str, str] = {}
        self.check_restart = check_restart
        self.plans: list[Plan] = []
        self.checks: list[Callable[[Platform, Plan, Observed], None]] = []

    # --- what the engine sees ---------------------------------------------------------------------

    def observed(self) -> Observed:
        revs = {}
        min_ready = timedelta(seconds=self.rollout.spec.min_ready_seconds)
        for name, r in self.revisions.items():
            ready = [p for p in r.pods if p.state == "ready"]
            available = [p for p in ready if p.ready_since is not None and self.now - p.ready_since >= min_ready]
            revs[name] = RevisionObserved(
                desired=r.desired,
                ready=len(ready),
                available=len(available),
                existing=len(r.pods),
                crash_looping=r.crash,
            )
        return Observed(revisions=revs, config_hashes=dict(self.config_hashes))

    @property
    def plan(self) -> Plan:
        return self.plans[-1]

    @property
    def status(self) -> Any:
        return self.plan.status

    # --- driving ----------------------------------------------------------------------------------

    def reconcile(self, *commands: Command) -> Plan:
        observed = self.observed()
        verdicts = dict(self.verdicts)
        plan = reconcile(self.rollout, observed, self.now, verdicts, commands)
        for check in [check_always, *self.checks]:
            check(self, plan, observed)
        if self.check_restart:
            # As a controller restarted from the stored resource would: the status as JSON.
            stored = RolloutStatus.model_validate(json.loads(json.dumps(plan.status.to_dict())))
            restarted = self.rollout.model_copy(update={"status": stored})
            again = reconcile(restarted, observed, self.now, verdicts, ())
            assert again == plan, _diff(plan, again)
        self.plans.append(plan)
        self._apply(plan)
        return plan

    def advance(self, seconds: float) -> None:
        """Let time pass, moving replicas and analysis runs along as it does."""
        end = self.now + timedelta(seconds=seconds)
        while True:
            nxt = self._next_event()
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            self._tick()
        self.now = end
        self._tick()

    def run(self, seconds: float, *, until: Callable[[Plan], bool] | None = None) -> Plan:
        """Reconcile whenever something changes or the engine asked to be woken, for `seconds`
        of simulated time or until `until(plan)` holds."""
        end = self.now + timedelta(seconds=seconds)
        plan = self.reconcile()
        while not (until is not None and until(plan)):
            wake = [t for t in (self._next_event(), self._requeue_at(plan)) if t is not None]
            if not wake or min(wake) > end:
                self.now = end
                self._tick()
                return self.reconcile()
            self.now = max(self.now, min(wake))
            self._tick()
            plan = self.reconcile()
        return plan

    def update(self, version: int | None = None, **spec: Any) -> None:
        """Edit the spec (a new version is a new revision); the status carries over."""
        data = self.rollout.to_dict()
        if version is not None:
            data["spec"]["process"]["command"] = ["app", f"--version={version}"]
        data["spec"].update(spec)
        status = self.rollout.status
        data.pop("status", None)
        self.rollout = Rollout.model_validate(data).model_copy(update={"status": status})

    def crash(self, revision: str, crashing: bool = True) -> None:
        r = self.revisions.setdefault(revision, Revision())
        r.crash = crashing
        if crashing:
            for p in r.pods:
                if p.state == "ready":
                    p.state, p.since, p.ready_since = "starting", self.now, None

    def finish(self, kind: str, verdict: Verdict) -> list[str]:
        """Give every running run of this kind its verdict now."""
        names = [n for n, run in self.runs.items() if run.request.kind == kind and self.verdicts.get(n) == "Running"]
        for name in names:
            self.verdicts[name] = verdict
        return names

    def running(self, kind: str | None = None) -> list[AnalysisRunRequest]:
        return [r for r in self.plan.analysis if kind is None or r.kind == kind]

    # --- carrying out a plan ----------------------------------------------------------------------

    def _apply(self, plan: Plan) -> None:
        self.rollout = self.rollout.model_copy(update={"status": plan.status})
        for name, count in plan.replicas.items():
            self._scale(self.revisions.setdefault(name, Revision()), count)
        for request in plan.analysis:
            if request.name not in self.runs:
                self.runs[request.name] = Run(request, self.now)
                self.verdicts.setdefault(request.name, "Running")
        for name in plan.stop_runs:
            self.verdicts.pop(name, None)
            self.runs.pop(name, None)

    def _scale(self, r: Revision, count: int) -> None:
        r.desired = count
        alive = [p for p in r.pods if p.state != "terminating"]
        for _ in range(count - len(alive)):
            r.pods.append(Pod("starting", self.now))
        # Like a ReplicaSet: remove replicas that are not ready first, the newest first.
        excess = len(alive) - count
        for p in sorted(alive, key=lambda p: (p.state == "ready", p.since), reverse=False)[: max(excess, 0)]:
            p.state, p.since, p.ready_since = "terminating", self.now, None

    def _tick(self) -> None:
        for r in self.revisions.values():
            for p in r.pods:
                if p.state == "starting" and not r.crash and self.now - p.since >= self.ready_after:
                    p.state, p.since, p.ready_since = "ready", self.now, self.now
            r.pods = [p for p in r.pods if not (p.state == "terminating" and self.now - p.since >= self.drain_after)]
        for name, run in self.runs.items():
            verdict = self.outcomes.get(run.request.kind)
            if verdict and self.verdicts.get(name) == "Running" and self.now - run.started >= self.analysis_after:
                self.verdicts[name] = verdict

    def _next_event(self) -> datetime | None:
        times = []
        min_ready = timedelta(seconds=self.rollout.spec.min_ready_seconds)
        for r in self.revisions.values():
            for p in r.pods:
                if p.state == "starting" and not r.crash:
                    times.append(p.since + self.ready_after)
                elif p.state == "terminating":
                    times.append(p.since + self.drain_after)
                elif p.state == "ready" and p.ready_since is not None and self.now - p.ready_since < min_ready:
                    times.append(p.ready_since + min_ready)
        for name, run in self.runs.items():
            if self.outcomes.get(run.request.kind) and self.verdicts.get(name) == "Running":
                times.append(run.started + self.analysis_after)
        future = [t for t in times if t > self.now]
        return min(future) if future else None

    def _requeue_at(self, plan: Plan) -> datetime | None:
        if plan.requeue_after is None:
            return None
        return self.now + timedelta(seconds=plan.requeue_after)


# --- invariants that hold for every strategy after every reconcile ---------------------------------


def check_always(platform: Platform, plan: Plan, observed: Observed) -> None:
    weights = plan.routes.weights
    assert all(isinstance(v, int) and 0 <= v <= 100 for v in weights.values()), weights
    stable = plan.status.stable_revision
    if weights:
        assert sum(weights.values()) == 100, weights
    else:
        # Only when nothing that may serve can: the stable revision has no ready replica, or is
        # being stopped (recreate's downtime window).
        assert stable is None or observed.of(stable).ready == 0 or plan.replicas.get(stable) == 0, plan.status.message
    for rev, weight in weights.items():
        if weight > 0:
            assert observed.of(rev).ready > 0, f"{weight}% to {rev} with no ready replica"
    for m in plan.routes.matches:
        assert observed.of(m.revision).ready > 0, f"match {m.name} to {m.revision} with no ready replica"
    for mirror in plan.routes.mirrors:
        assert observed.of(mirror.revision).ready > 0, f"mirror to {mirror.revision} with no ready replica"
    assert all(c >= 0 for c in plan.replicas.values())
    if plan.requeue_after is not None:
        assert plan.requeue_after > 0


def _diff(a: Plan, b: Plan) -> str:
    lines = ["restarted engine planned differently:"]
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if x != y:
            if name == "status":
                dx, dy = x.model_dump(), y.model_dump()
                for k in dx:
                    if dx[k] != dy[k]:
                        lines.append(f"  status.{k}: {dx[k]!r} != {dy[k]!r}")
            else:
                lines.append(f"  {name}: {x!r} != {y!r}")
    return "\n".join(lines)


def weights_of(plan: Plan) -> dict[str, int]:
    return dict(plan.routes.weights)


def cmds(*verbs: str) -> Iterable[Command]:
    return [Command(v) for v in verbs]  # type: ignore[arg-type]


def deployed(strategy: dict[str, Any], *, replicas: int = 4, **kw: Any) -> Platform:
    """Given: a rollout whose first revision is up and stable."""
    spec = {k: kw.pop(k) for k in list(kw) if k in _SPEC_KEYS}
    p = Platform(rollout(strategy, replicas=replicas, **spec), **kw)
    p.run(120, until=lambda plan: plan.status.phase == "Healthy")
    assert p.status.phase == "Healthy", p.status.message
    return p


_SPEC_KEYS = {"minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds", "progressDeadlineAbort", "paused"}

LOCAL = {"local": {}}


def phase_is(*phases: str) -> Callable[[Plan], bool]:
    return lambda plan: plan.status.phase in phases
