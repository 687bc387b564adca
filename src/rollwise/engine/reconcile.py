"""The engine's entry: one pure function from (rollout, observed state, now, verdicts, commands)
to a plan. It reads its memory from rollout.status and writes it into plan.status; run again on
that status with the same inputs, it returns the same plan."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from rollwise.engine import (
    abtest,
    analysis,
    bluegreen,
    canary,
    deadline,
    lifecycle,
    recreate,
    report,
    rolling,
    shadow,
)
from rollwise.engine.clock import check_now, until
from rollwise.engine.commands import abort_mode
from rollwise.engine.commands import apply as apply_command
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import FINAL_VERDICTS, Command, Observed, Plan, RouteTable, Verdict
from rollwise.engine.revision import revision_name
from rollwise.engine.routes import guard
from rollwise.engine.work import SPEC_PAUSE, Ctx, Work
from rollwise.spec.rollout import Rollout

Strategy = Callable[[Work, Ctx], Outcome]

STRATEGIES: dict[str, Strategy] = {
    "recreate": recreate.reconcile,
    "rollingUpdate": rolling.reconcile,
    "blueGreen": bluegreen.reconcile,
    "canary": canary.reconcile,
    "shadow": shadow.reconcile,
    "abTest": abtest.reconcile,
}


def reconcile(
    rollout: Rollout,
    observed: Observed,
    now: datetime,
    verdicts: Mapping[str, Verdict] | None = None,
    commands: Iterable[Command] = (),
) -> Plan:
    ctx = Ctx(rollout=rollout, observed=observed, now=check_now(now), verdicts=verdicts or {})
    w = Work.load(rollout.status)
    spec_revision = revision_name(rollout.spec, observed.config_hashes)
    lifecycle.choose_target(w, ctx, spec_revision)
    for command in commands:
        apply_command(w, ctx, command)
    if rollout.spec.paused:
        w.pause(SPEC_PAUSE, ctx.now)
    else:
        w.unpause(SPEC_PAUSE)
    strategy = STRATEGIES[rollout.spec.strategy.name]
    out = _run(strategy, w, ctx)
    late = deadline.exceeded(w, ctx, out)
    if late and rollout.spec.progress_deadline_abort and w.updating and w.abort is None:
        lifecycle.begin_abort(
            w,
            ctx,
            "ProgressDeadlineExceeded",
            f"no progress for {rollout.spec.progress_deadline_seconds}s",
            abort_mode(ctx),
        )
        ctx.invalid.clear()
        out = _run(strategy, w, ctx)
        late = deadline.exceeded(w, ctx, out)
    return _plan(w, ctx, out, late, spec_revision)


def _run(strategy: Strategy, w: Work, ctx: Ctx) -> Outcome:
    out = strategy(w, ctx)
    if not report.shows_steps(w, ctx):
        w.step = None
    for rev in ctx.observed.revisions:
        out.replicas.setdefault(rev, 0)
        out.roles.setdefault(rev, "old")
    out.notes += guard(w, ctx, out)
    return out


def _plan(w: Work, ctx: Ctx, out: Outcome, late: bool, spec_revision: str) -> Plan:
    w.canary_weight = out.canary_weight
    analysis.prune(w, out)
    running = {r for r, c in out.replicas.items() if c > 0} | {
        r for r, o in ctx.observed.revisions.items() if o.present > 0
    }
    retained = lifecycle.prune(w, ctx.now, ctx.spec.revision_history_limit, running)
    status = report.build(w, ctx, out, late)
    wanted = {r.name for r in out.runs}
    start = tuple(r.name for r in out.runs if r.name not in ctx.verdicts)
    stop = tuple(sorted(name for name, v in ctx.verdicts.items() if v not in FINAL_VERDICTS and name not in wanted))
    wake = [t for t in out.wake if t > ctx.now]
    requeue = min((until(ctx.now, t) for t in wake), default=None)
    return Plan(
        revision=spec_revision,
        replicas=dict(out.replicas),
        routes=RouteTable(
            weights=dict(out.weights),
            matches=tuple(out.matches),
            mirrors=tuple(out.mirrors),
            sticky_by=out.sticky_by,
            preview=out.preview,
        ),
        status=status,
        analysis=tuple(out.runs),
        start_runs=start,
        stop_runs=stop,
        requeue_after=requeue,
        min_ready_seconds=ctx.spec.min_ready_seconds,
        retained_revisions=tuple(retained),
    )
