"""A/B test: the control (stable) and the candidate (new revision) serve users chosen by match
rules and/or a sticky share, for `duration`, with `analysis` as guardrails (a failure stops the
test). Then a verdict on `winnerBy` promotes the candidate or keeps the control; with no winner
(or no `winnerBy`), `onNoWinner` decides."""

from __future__ import annotations

from rollwise.engine import analysis, base, lifecycle
from rollwise.engine.analysis import Judge
from rollwise.engine.clock import span, stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import MatchRoute
from rollwise.engine.routes import two_way
from rollwise.engine.steps import sized
from rollwise.engine.work import Ctx, Work
from rollwise.spec.strategies.abtest import ABTestStrategy, Variant

STARTING, EXPERIMENT, PROMOTING = "starting", "experiment", "promoting"


def reconcile(w: Work, ctx: Ctx) -> Outcome:
    ab = ctx.spec.strategy.ab_test
    assert ab is not None
    delay = float(ab.scale_down_delay_seconds)
    if not w.updating:
        return base.steady(w, ctx)
    if w.stable is None:
        return base.initial(w, ctx, scale_down_delay=delay) or base.steady(w, ctx)
    if w.abort is not None:
        return base.rolled_back(w, ctx)
    if w.stage in (None, STARTING, EXPERIMENT):
        out = _experiment(w, ctx, ab)
        if out is not None:
            return out
    if w.abort is not None:
        return base.rolled_back(w, ctx)
    return base.switch(w, ctx, "candidate won", scale_down_delay=delay) or base.steady(w, ctx)


def _variant(ab: ABTestStrategy, role: str) -> Variant | None:
    return next((v for v in ab.variants if v.role == role), None)


def candidate_replicas(ab: ABTestStrategy, n: int) -> int:
    """A weighted candidate is sized to its share; one chosen by match rules gets every replica,
    since nobody knows beforehand how much traffic its rules select."""
    cand = _variant(ab, "candidate")
    if n == 0 or cand is None:
        return 0
    if cand.match or cand.weight is None:
        return n
    return max(1, sized(n, cand.weight))


def _experiment(w: Work, ctx: Ctx, ab: ABTestStrategy) -> Outcome | None:
    """Run the experiment; None once it concluded for the candidate (or the rollout aborted)."""
    control, candidate, n = w.stable, w.current, ctx.n
    assert control is not None and candidate is not None
    count = candidate_replicas(ab, n)
    out = Outcome(replicas={control: n, candidate: count}, weights={control: 100})
    out.roles = {control: "stable", candidate: "canary"}
    base.others_down(w, ctx, out)
    if w.stage is None:
        w.stage = STARTING
    if ctx.promote is not None:
        ctx.promote = None
        return _conclude(w, ctx, promote=True, why="promoted by a user")
    if w.stage == STARTING:
        if not ctx.fully_ready(candidate, count):
            out.waiting = True
            out.message = f"candidate {candidate}: {ctx.available(candidate)} of {count} replicas available"
            return out
        w.stage, w.stage_started_at = EXPERIMENT, ctx.now
    _routes(out, ab, control, candidate)
    started = w.stage_started_at or ctx.now
    end = started + span(ab.duration)
    if ab.analysis is not None:
        # Guardrails: limits the candidate must respect throughout, whatever the control does.
        guard = analysis.settle(w, ctx, analysis.track(w, ctx, out, "abTest", ab.analysis))
        if guard == "failed":
            return _conclude(w, ctx, promote=False, why="guardrail analysis failed", reason="GuardrailFailed")
    label = f"A/B test {control} vs {candidate}"
    hold = base.hold_reason(w)
    if hold is not None:
        out.message = f"{label}: {hold}"
        return out
    if ctx.now < end:
        out.wake.append(end)
        out.message = f"{label}: experiment runs until {stamp(end)}"
        return out
    if ab.winner_by is None:
        return _no_winner(w, ctx, ab, "no winnerBy to judge by")
    judge = Judge(winner_by=ab.winner_by)
    state = analysis.track(w, ctx, out, "abWinner", ab.analysis, judge=judge)
    if state == "running":
        out.message = f"{label}: experiment over, waiting for the verdict on {ab.winner_by.metric}"
        return out
    if state == "passed":
        return _conclude(w, ctx, promote=True, why=f"the candidate wins on {ab.winner_by.metric}")
    if state == "failed":
        return _conclude(w, ctx, promote=False, why=f"the control wins on {ab.winner_by.metric}")
    if state == "inconclusive":
        return _no_winner(w, ctx, ab, f"no significant difference on {ab.winner_by.metric}")
    analysis.settle(w, ctx, state)  # an error: no verdict at all, so a human decides
    out.message = f"{label}: {base.hold_reason(w)}"
    return out


def _no_winner(w: Work, ctx: Ctx, ab: ABTestStrategy, why: str) -> Outcome | None:
    promote = ab.on_no_winner == "promoteCandidate"
    return _conclude(w, ctx, promote=promote, why=f"{why} (onNoWinner: {ab.on_no_winner})", reason="NoWinner")


def _routes(out: Outcome, ab: ABTestStrategy, control: str, candidate: str) -> None:
    routes = []
    for v in ab.variants:
        if v.match:
            routes.append(
                MatchRoute(f"variant-{v.name}", control if v.role == "control" else candidate, tuple(v.match))
            )
    # Control's rules first: a request both variants claim stays on what users already know.
    out.matches = sorted(routes, key=lambda m: m.revision != control)
    cand = _variant(ab, "candidate")
    if cand is not None and cand.weight:
        out.weights = two_way(control, candidate, cand.weight)
        out.sticky_by = ab.sticky_by


def _conclude(w: Work, ctx: Ctx, *, promote: bool, why: str, reason: str = "ControlWon") -> Outcome | None:
    if promote:
        w.stage, w.stage_started_at = PROMOTING, ctx.now
        return None
    lifecycle.begin_abort(w, ctx, reason, f"A/B test kept the control: {why}")
    return base.rolled_back(w, ctx)
