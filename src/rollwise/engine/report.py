"""The status a user reads: phase, message, conditions, per-revision replicas — written from the
working memory and the strategy's outcome."""

from __future__ import annotations

from rollwise.engine.clock import stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.work import Ctx, Work
from rollwise.spec.status import (
    Condition,
    PauseCondition,
    Phase,
    RevisionReplicas,
    RevisionWeight,
    RolloutStatus,
)


def phase(w: Work, ctx: Ctx, out: Outcome, late: bool) -> Phase:
    if w.abort is not None:
        return "Aborted"
    if ctx.invalid or late:
        return "Degraded"
    if w.pauses:
        return "Paused"
    if w.updating or out.waiting:
        return "Progressing"
    return "Healthy"


def message(w: Work, ctx: Ctx, out: Outcome, late: bool) -> str:
    parts = [out.message] if out.message else []
    if ctx.invalid:
        parts.append("cannot proceed: " + "; ".join(ctx.invalid))
    if late:
        parts.append(f"no progress for {ctx.spec.progress_deadline_seconds}s (progressDeadlineSeconds)")
    parts += out.notes
    return "; ".join(parts)


def conditions(w: Work, ctx: Ctx, out: Outcome, ph: Phase, late: bool) -> list[Condition]:
    total_available = sum(min(ctx.available(r), c) for r, c in out.replicas.items())
    if w.abort is not None:
        progressing = ("False", "RolloutAborted", w.abort.message)
    elif late:
        progressing = ("False", "ProgressDeadlineExceeded", f"no progress for {ctx.spec.progress_deadline_seconds}s")
    elif ph == "Paused":
        progressing = ("Unknown", "RolloutPaused", ", ".join(w.pauses))
    elif w.updating or out.waiting:
        progressing = ("True", "RolloutUpdating", out.message)
    else:
        progressing = ("True", "RolloutCompleted", out.message)
    wanted = [
        ("Progressing", *progressing),
        (
            "Available",
            "True" if total_available >= ctx.n else "False",
            "EnoughReplicas" if total_available >= ctx.n else "NotEnoughReplicas",
            f"{total_available} of {ctx.n} replicas available",
        ),
        ("Paused", "True" if w.pauses else "False", ", ".join(w.pauses) or "NotPaused", None),
        (
            "Completed",
            "True" if not w.updating and w.abort is None and not out.waiting else "False",
            "RolloutCompleted" if not w.updating else "RolloutUpdating",
            None,
        ),
    ]
    if ctx.invalid:
        wanted.append(("InvalidSpec", "True", "InvalidSpec", "; ".join(ctx.invalid)))
    previous = {c.type: c for c in w.conditions}
    result = []
    for kind, status, reason, msg in wanted:
        before = previous.get(kind)
        # The transition time moves only when the status does (Kubernetes' convention).
        since = before.last_transition_time if before is not None and before.status == status else stamp(ctx.now)
        result.append(
            Condition(type=kind, status=status, reason=reason, message=msg or None, last_transition_time=since)  # type: ignore[arg-type]
        )
    return result


def build(w: Work, ctx: Ctx, out: Outcome, late: bool) -> RolloutStatus:
    ph = phase(w, ctx, out, late)
    observed = ctx.observed
    revisions = [
        RevisionReplicas(
            revision=r,
            role=out.roles.get(r, "old"),
            replicas=count,
            ready=observed.of(r).ready,
            available=observed.of(r).available,
            weight=out.weights.get(r, 0),
        )
        for r, count in out.replicas.items()
    ]
    selector = None
    if ctx.spec.selector is not None and ctx.spec.selector.match_labels:
        selector = ",".join(f"{k}={v}" for k, v in sorted(ctx.spec.selector.match_labels.items()))
    generation = ctx.rollout.metadata.model_extra.get("generation") if ctx.rollout.metadata.model_extra else None
    return RolloutStatus(
        phase=ph,
        message=message(w, ctx, out, late),
        observed_generation=generation if isinstance(generation, int) and generation >= 0 else None,
        current_revision=w.current,
        stable_revision=w.stable,
        current_step_index=w.step,
        replicas=sum(out.replicas.values()),
        updated_replicas=observed.of(w.current).ready,
        ready_replicas=sum(o.ready for o in observed.revisions.values()),
        available_replicas=sum(o.available for o in observed.revisions.values()),
        selector=selector,
        weights=[RevisionWeight(revision=r, weight=v) for r, v in out.weights.items()],
        canary_weight=w.canary_weight,
        conditions=conditions(w, ctx, out, ph, late),
        pause_conditions=[PauseCondition(reason=r, start_time=stamp(t)) for r, t in w.pauses.items()] or None,
        aborted=w.abort is not None,
        history=w.history or None,
        last_completion=w.completion,
        spec_revision=w.spec_revision,
        update_started_at=w.stamp_or_none(w.update_started_at),
        step_started_at=w.stamp_or_none(w.step_started_at),
        stage=w.stage,
        stage_started_at=w.stamp_or_none(w.stage_started_at),
        attempt=w.attempt,
        abort=w.abort,
        analysis_runs=w.runs or None,
        blue_green=w.blue_green,
        dynamic=w.dynamic,
        downtime=w.downtime,
        undo=w.undo,
        last_command=w.last_command,
        progress_since=w.stamp_or_none(w.progress_since),
        progress_mark=w.progress_mark,
        revisions=revisions or None,
        engine=w.engine,
    )


def shows_steps(w: Work, ctx: Ctx) -> bool:
    """Only a canary (past its first revision) and shadow's promotion steps have a step index;
    it is memory there, and meaningless anywhere else."""
    if not w.updating or w.stable is None:
        return False
    strategy = ctx.spec.strategy
    return strategy.canary is not None or (strategy.shadow is not None and w.stage == "promotionSteps")
