"""An engine's AnalysisRunRequest as JSON, kept with the run so that a restarted control plane
resumes it exactly as asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollwise.engine import AnalysisRunRequest
from rollwise.spec.strategies.abtest import WinnerBy
from rollwise.spec.strategies.canary import DynamicWeighting
from rollwise.spec.strategies.shadow import ShadowCompare


def to_json(r: AnalysisRunRequest) -> dict[str, Any]:
    return {
        "name": r.name,
        "kind": r.kind,
        "step": r.step,
        "revision": r.revision,
        "stableRevision": r.stable_revision,
        "templates": [[name, cluster] for name, cluster in r.templates],
        "args": [[name, value] for name, value in r.args],
        "dynamic": None if r.dynamic is None else r.dynamic.model_dump(by_alias=True, mode="json"),
        "winnerBy": None if r.winner_by is None else r.winner_by.model_dump(by_alias=True, mode="json"),
        "compare": None if r.compare is None else r.compare.model_dump(by_alias=True, mode="json"),
    }


def from_json(d: Mapping[str, Any]) -> AnalysisRunRequest:
    return AnalysisRunRequest(
        name=str(d["name"]),
        kind=d["kind"],
        step=d.get("step"),
        revision=str(d["revision"]),
        stable_revision=d.get("stableRevision"),
        templates=tuple((str(n), bool(c)) for n, c in d.get("templates") or []),
        args=tuple((str(n), None if v is None else str(v)) for n, v in d.get("args") or []),
        dynamic=None if d.get("dynamic") is None else DynamicWeighting.model_validate(d["dynamic"]),
        winner_by=None if d.get("winnerBy") is None else WinnerBy.model_validate(d["winnerBy"]),
        compare=None if d.get("compare") is None else ShadowCompare.model_validate(d["compare"]),
    )
