"""Analysis runs as the engine sees them: it decides which runs must be running, names them
deterministically, and reads their verdicts back (remembering final ones in the status)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from rollwise.engine.clock import stamp
from rollwise.engine.outcome import Outcome
from rollwise.engine.plan import FINAL_VERDICTS, AnalysisRunRequest
from rollwise.engine.work import ERROR_PAUSE, INCONCLUSIVE_PAUSE, Ctx, Work
from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.status import AnalysisRecord, RunKind
from rollwise.spec.strategies.abtest import WinnerBy
from rollwise.spec.strategies.canary import DynamicWeighting
from rollwise.spec.strategies.shadow import ShadowCompare

State = Literal["running", "passed", "failed", "error", "inconclusive"]
UNSURE = frozenset({"Inconclusive", "Error"})

_SLUG: dict[str, str] = {
    "step": "step",
    "background": "bg",
    "prePromotion": "pre",
    "postPromotion": "post",
    "shadow": "shadow",
    "shadowCompare": "compare",
    "abTest": "ab",
    "abWinner": "winner",
    "dynamic": "dyn",
    "gate": "gate",
}


@dataclass(frozen=True)
class Judge:
    """What a judgement run judges by (see AnalysisRunRequest)."""

    dynamic: DynamicWeighting | None = None
    winner_by: WinnerBy | None = None
    compare: ShadowCompare | None = None


NO_JUDGE = Judge()


def run_name(ctx: Ctx, w: Work, kind: RunKind, step: int | None, rerun: int = 0) -> str:
    assert w.current is not None
    name = f"{ctx.name}-{w.current}-{w.attempt}-{_SLUG[kind]}"
    if step is not None:
        name += str(step)
    if rerun:
        name += f"-r{rerun}"
    return name


def find(w: Work, kind: RunKind, step: int | None) -> AnalysisRecord | None:
    for r in w.runs:
        if r.kind == kind and r.step == step and r.revision == w.current:
            return r
    return None


def track(
    w: Work,
    ctx: Ctx,
    out: Outcome,
    kind: RunKind,
    ref: RolloutAnalysis | None,
    step: int | None = None,
    judge: Judge = NO_JUDGE,
) -> State:
    """Make sure the run exists (asking for it while it has no final verdict) and say where it stands."""
    assert w.current is not None
    record = find(w, kind, step)
    if record is None:
        record = AnalysisRecord(
            name=run_name(ctx, w, kind, step),
            kind=kind,
            step=step,
            revision=w.current,
            started_at=stamp(ctx.now),
        )
        w.runs.append(record)
    if record.verdict not in FINAL_VERDICTS:
        seen = ctx.verdicts.get(record.name)
        if seen is not None and seen != record.verdict:
            record = _replace(w, record, verdict=seen)
    if record.verdict not in FINAL_VERDICTS:
        out.runs.append(request(ctx, w, record, ref, judge))
        return "running"
    return state(record)


Settled = Literal["passed", "failed", "running", "unsure"]


def settle(w: Work, ctx: Ctx, st: State) -> Settled:
    """The rule every gate shares: success passes, failure fails, and an inconclusive verdict or
    an error (a provider down, no data) pauses for a human — it never promotes, never aborts."""
    if st == "inconclusive":
        w.pause(INCONCLUSIVE_PAUSE, ctx.now)
        return "unsure"
    if st == "error":
        w.pause(ERROR_PAUSE, ctx.now)
        return "unsure"
    return st


def state(record: AnalysisRecord) -> State:
    v = record.verdict
    if v == "Successful" or (v in UNSURE and record.accepted):
        return "passed"
    if v == "Failed":
        return "failed"
    if v == "Error":
        return "error"
    if v == "Inconclusive":
        return "inconclusive"
    return "running"


def accept_unsure(w: Work) -> None:
    """A human promoted past inconclusive or errored verdicts. Analysis that watches the whole
    rollout has to keep watching, so it starts again rather than counting as passed."""
    for r in list(w.runs):
        if r.verdict in UNSURE and not r.accepted:
            if r.kind in ("background", "gate"):
                rerun(w, r)
            else:
                _replace(w, r, accepted=True)


def rerun_unsure(w: Work) -> None:
    for r in list(w.runs):
        if r.verdict in UNSURE and not r.accepted:
            rerun(w, r)


def rerun(w: Work, record: AnalysisRecord) -> None:
    match = re.search(r"-r(\d+)$", record.name)
    count = int(match.group(1)) + 1 if match else 1
    base = record.name[: match.start()] if match else record.name
    _replace(w, record, name=f"{base}-r{count}", verdict="Pending", accepted=False)


def prune(w: Work, out: Outcome) -> None:
    """Runs no longer asked for are dropped unless they ended: a final verdict is memory."""
    wanted = {r.name for r in out.runs}
    w.runs = [r for r in w.runs if r.name in wanted or r.verdict in FINAL_VERDICTS]


def _replace(w: Work, record: AnalysisRecord, **changes: Any) -> AnalysisRecord:
    new = record.model_copy(update=changes)
    w.runs = [new if r is record else r for r in w.runs]
    return new


def request(ctx: Ctx, w: Work, record: AnalysisRecord, ref: RolloutAnalysis | None, judge: Judge) -> AnalysisRunRequest:
    templates = ref.templates if ref is not None else []
    args = (ref.args or []) if ref is not None else []
    return AnalysisRunRequest(
        name=record.name,
        kind=record.kind,
        step=record.step,
        revision=record.revision,
        stable_revision=w.stable,
        templates=tuple((t.template_name, t.cluster_scope) for t in templates),
        args=tuple(
            (a.name, _arg_value(ctx, w, a.value, a.value_from.field_ref.field_path if a.value_from else None))
            for a in args
        ),
        dynamic=judge.dynamic,
        winner_by=judge.winner_by,
        compare=judge.compare,
    )


_STATUS_FIELDS = {
    "status.currentRevision": "current",
    "status.canaryRevision": "current",
    "status.stableRevision": "stable",
}
_TOKEN = re.compile(r"\.?([A-Za-z0-9_-]+)|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[(\d+)\]")


def _arg_value(ctx: Ctx, w: Work, value: str | None, path: str | None) -> str | None:
    if path is None:
        return value
    if path in _STATUS_FIELDS:
        return w.current if _STATUS_FIELDS[path] == "current" else w.stable
    if path.startswith("status."):
        # Other status fields are the platform's to fill in; the run is told the value is unknown.
        return None
    node: Any = ctx.rollout_dict()
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        pos = m.end()
        key: str | int = m.group(1) or m.group(2) or m.group(3) or ""
        if m.group(4) is not None:
            key = int(m.group(4))
        found = (isinstance(node, dict) and isinstance(key, str) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and key < len(node)
        )
        if not found:
            return None
        node = node[key]
    if isinstance(node, dict | list):
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)
