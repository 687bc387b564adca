"""A dry run of a rollout: the engine driven by an idealised platform on which every replica is
ready at once, every analysis run passes and a human promotes whenever asked. It is what
`rollwise plan` prints. Pure like the engine: simulated clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rollwise.engine.plan import AnalysisRunRequest, Command, Observed, Plan, RevisionObserved, Verdict
from rollwise.engine.reconcile import reconcile
from rollwise.engine.revision import revision_name
from rollwise.engine.steps import describe
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import RevisionRecord, RolloutStatus
from rollwise.spec.steps import CanaryStep

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PREVIOUS = "previous"  # the revision running before the simulated update
HUMAN_GATES = frozenset({"CanaryPauseStep", "BlueGreenPause", "InconclusiveAnalysis"})


@dataclass(frozen=True)
class Moment:
    """What the plan looked like from `at` seconds on."""

    at: float
    step: str
    stage: str | None
    index: int | None
    phase: str
    weights: tuple[tuple[str, int], ...]
    replicas: tuple[tuple[str, int], ...]
    routes: tuple[str, ...]
    analysis: tuple[str, ...]
    waits: str
    message: str

    def key(self) -> tuple[object, ...]:
        return (self.step, self.phase, self.weights, self.replicas, self.routes, self.analysis, self.waits)


@dataclass
class Simulation:
    rollout: Rollout
    new: str
    moments: list[Moment] = field(default_factory=list)
    finished: bool = False


def simulate(rollout: Rollout, *, first: bool = False, limit: int = 500) -> Simulation:
    """Roll the spec's revision out over a running previous revision (or, with `first`, deploy it
    as the first revision) and record every distinct plan on the way."""
    n = rollout.spec.replicas
    new = revision_name(rollout.spec, {})
    ready: dict[str, int] = {}
    status: RolloutStatus | None = None
    if not first:
        ready[PREVIOUS] = n
        status = RolloutStatus(
            phase="Healthy",
            current_revision=PREVIOUS,
            stable_revision=PREVIOUS,
            spec_revision=PREVIOUS,
            history=[RevisionRecord(revision=PREVIOUS, number=1)],
        )
    sim = Simulation(rollout=rollout, new=new)
    now = EPOCH
    verdicts: dict[str, Verdict] = {}
    commands: list[Command] = []
    current = rollout.model_copy(update={"status": status})
    for _ in range(limit):
        observed = Observed(
            revisions={r: RevisionObserved(desired=c, ready=c, available=c, existing=c) for r, c in ready.items()}
        )
        plan = reconcile(current, observed, now, verdicts, commands)
        commands = []
        current = current.model_copy(update={"status": plan.status})
        waits = _record(sim, plan, now)
        if plan.status.phase == "Healthy" and plan.status.stable_revision == new:
            sim.finished = True
            break
        if plan.status.phase in ("Aborted", "Degraded"):
            break
        # The idealised platform: replicas as asked, every run started passes, humans say yes.
        changed = {r: c for r, c in plan.replicas.items() if ready.get(r, 0) != c}
        ready.update(plan.replicas)
        for run in plan.analysis:
            verdicts[run.name] = "Successful"
        if waits == "human":
            commands = [Command("promote")]
            continue
        if changed or plan.analysis:
            continue
        if plan.requeue_after is None:
            break
        now += timedelta(seconds=plan.requeue_after)
    return sim


def _record(sim: Simulation, plan: Plan, now: datetime) -> str:
    s = plan.status
    names = {PREVIOUS: "stable", sim.new: "new"}
    if s.stable_revision and s.stable_revision not in names:
        names[s.stable_revision] = "stable"

    def name(revision: str) -> str:
        return names.get(revision, revision)

    routes = [f"match {m.name} → {name(m.revision)}" for m in plan.routes.matches]
    routes += [f"mirror {m.percent}% → {name(m.revision)}" for m in plan.routes.mirrors]
    if plan.routes.preview:
        routes.append(f"preview → {name(plan.routes.preview)}")
    if plan.routes.sticky_by is not None:
        key = plan.routes.sticky_by.cookie or plan.routes.sticky_by.header
        routes.append(f"weights sticky by {key}")
    reasons = [p.reason for p in s.pause_conditions or []]
    gated = any(r in HUMAN_GATES for r in reasons) and plan.requeue_after is None
    # A wake-up while replicas are awaited is only the progress deadline: not a wait of the plan.
    timed = plan.requeue_after is not None and s.progress_since is None and s.current_revision != s.stable_revision
    waits = "human" if gated else (f"{plan.requeue_after:g}s" if timed else "")
    moment = Moment(
        at=(now - EPOCH).total_seconds(),
        step=_step_label(sim.rollout, s),
        stage=s.stage,
        index=s.current_step_index if s.current_revision != s.stable_revision else None,
        phase=s.phase or "",
        weights=tuple((name(r), w) for r, w in plan.routes.weights.items() if w),
        replicas=tuple((name(r), c) for r, c in plan.replicas.items() if c),
        routes=tuple(routes),
        analysis=tuple(_run_label(a) for a in plan.analysis),
        waits=waits,
        message=s.message or "",
    )
    last = sim.moments[-1] if sim.moments else None
    # A run that just passed changes nothing a person needs to see twice.
    finished_run = last is not None and last.analysis and not moment.analysis
    if last is None or (last.key() != moment.key() and not (finished_run and _same_but_runs(last, moment))):
        sim.moments.append(moment)
    return waits


def _run_label(run: AnalysisRunRequest) -> str:
    if run.dynamic is not None:
        return "dynamic: judge of the interval"
    if run.winner_by is not None:
        return f"abWinner: {run.winner_by.metric} ({run.winner_by.better} is better)"
    if run.compare is not None:
        return "shadowCompare: mirrored replies"
    return f"{run.kind}: {', '.join(t for t, _ in run.templates)}"


def _same_but_runs(a: Moment, b: Moment) -> bool:
    return a.key()[:5] == b.key()[:5] and a.waits == b.waits


def steps_at(rollout: Rollout, stage: str | None) -> list[CanaryStep]:
    """The steps the step index refers to in this stage (none outside step-driven stages)."""
    strategy = rollout.spec.strategy
    if strategy.canary is not None:
        return list(strategy.canary.steps or [])
    if strategy.shadow is not None and stage == "promotionSteps":
        return list(strategy.shadow.promotion.steps or [])
    return []


def _step_label(rollout: Rollout, s: RolloutStatus) -> str:
    strategy = rollout.spec.strategy
    steps = steps_at(rollout, s.stage)
    if s.current_revision == s.stable_revision:
        return "done"
    if steps and s.current_step_index is not None:
        i = s.current_step_index
        if i < len(steps):
            return f"{i + 1}/{len(steps)} {describe(steps[i])}"
        return "promote"
    if strategy.canary is not None and strategy.canary.dynamic is not None and s.dynamic is not None:
        return f"dynamic {s.dynamic.weight}%"
    return s.stage or strategy.name
