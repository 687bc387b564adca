"""What runs inside one analysis run: a `Job`. Template runs (`TemplateJob`) measure the metrics
of AnalysisTemplates with the providers; judgement runs (dynamic weighting, A/B winner, shadow
comparison) live in judgements.py. A job reports every change through `report`, and keeps all it
needs to be resumed by a restarted control plane in `state()`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from rollwise.analysis.args import ArgumentError, resolve_args
from rollwise.analysis.job_env import JobEnv, MeasurementOut, Report
from rollwise.analysis.measure import measure_due
from rollwise.analysis.providers import MeasureContext
from rollwise.analysis.run import AnalysisRunState
from rollwise.analysis.waiting import wait_event
from rollwise.engine import AnalysisRunRequest
from rollwise.spec.analysis import AnalysisRunStatus, Argument, Metric, Verdict

FINAL: frozenset[Verdict] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})


class Job(Protocol):
    @property
    def phase(self) -> Verdict: ...

    @property
    def message(self) -> str | None: ...

    async def run(self, report: Report) -> None:
        """Measure until the run has a final phase (or is cancelled)."""

    def terminate(self, reason: str) -> None:
        """The engine no longer wants the run: end it now."""

    def state(self) -> dict[str, Any]: ...

    def metrics(self) -> list[dict[str, Any]]:
        """The API's view: [{"name", "phase", "message", "measurements": [...]}]."""


class FinishedJob:
    """A run that ended before measuring anything (a missing template, an argument without a
    value): it has its verdict at once."""

    def __init__(self, phase: Verdict, message: str) -> None:
        self._phase: Verdict = phase
        self._message = message

    @property
    def phase(self) -> Verdict:
        return self._phase

    @property
    def message(self) -> str | None:
        return self._message

    async def run(self, report: Report) -> None:
        report([])

    def terminate(self, reason: str) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"job": "finished", "phase": self._phase, "message": self._message}

    def metrics(self) -> list[dict[str, Any]]:
        return []


class TemplateJob:
    """The metrics of the run's AnalysisTemplates, measured as `AnalysisRunState` schedules them."""

    def __init__(
        self,
        request: AnalysisRunRequest,
        metrics: list[Metric],
        declared: list[Argument],
        env: JobEnv,
        *,
        started_at: datetime | None = None,
        status: AnalysisRunStatus | None = None,
    ) -> None:
        self.request = request
        self.declared = declared
        self.env = env
        self.machine = AnalysisRunState(metrics, started_at=started_at, status=_without_in_flight(status))
        self._metrics = metrics
        self._wake = asyncio.Event()

    @property
    def phase(self) -> Verdict:
        return self.machine.phase

    @property
    def message(self) -> str | None:
        return self.machine.message

    async def run(self, report: Report) -> None:
        env = self.env
        try:
            args = resolve_args(self.declared, dict(self.request.args), env=env.env, secrets=env.secrets)
        except ArgumentError as exc:
            self._fail(str(exc))
            report([])
            return
        revisions = {"canary": self.request.revision}
        if self.request.stable_revision is not None:
            revisions["stable"] = self.request.stable_revision
        context = MeasureContext(
            clock=env.clock, env=env.env, secrets=env.secrets, revisions=revisions, traffic=env.traffic
        )
        report([])
        while not self.machine.done:
            now = env.clock()
            wake = self.machine.wake_at(now)
            delay = 1.0 if wake is None else (wake - now).total_seconds()
            if delay > 0:
                self._wake.clear()
                await wait_event(self._wake, delay)
                continue
            await env.refresh()
            measured = await measure_due(self.machine, args, context, env.providers)
            out = []
            for name in measured:
                taken = self.machine.result(name).measurements
                if taken:
                    last = taken[-1]
                    out.append(MeasurementOut(name, last.phase, last.value, last.message))
            report(out)

    def _fail(self, message: str) -> None:
        # No measurement can be taken: the run errs, which the engine treats as "no evidence".
        self.machine.phase = "Error"
        self.machine.message = message

    def terminate(self, reason: str) -> None:
        self.machine.terminate(reason)
        self._wake.set()

    def state(self) -> dict[str, Any]:
        return {
            "job": "template",
            "metrics": [m.model_dump(by_alias=True, exclude_none=True, mode="json") for m in self._metrics],
            "declared": [a.model_dump(by_alias=True, exclude_none=True, mode="json") for a in self.declared],
            "status": self.machine.status().model_dump(by_alias=True, exclude_none=True, mode="json"),
        }

    def metrics(self) -> list[dict[str, Any]]:
        out = []
        for result in self.machine.status().metric_results or []:
            out.append(
                {
                    "name": result.name,
                    "phase": result.phase,
                    "message": result.message,
                    "measurements": [
                        m.model_dump(by_alias=True, exclude_none=True, mode="json") for m in result.measurements or []
                    ],
                }
            )
        return out

    @classmethod
    def resume(cls, request: AnalysisRunRequest, state: Mapping[str, Any], env: JobEnv) -> TemplateJob:
        return cls(
            request,
            [Metric.model_validate(m) for m in state["metrics"]],
            [Argument.model_validate(a) for a in state.get("declared") or []],
            env,
            status=AnalysisRunStatus.model_validate(state["status"]),
        )


def _without_in_flight(status: AnalysisRunStatus | None) -> AnalysisRunStatus | None:
    """A measurement in flight when the control plane died never finished: drop it, so that the
    metric is measured again instead of waiting for it forever."""
    if status is None:
        return None
    copy = status.model_copy(deep=True)
    for result in copy.metric_results or []:
        if result.measurements and result.measurements[-1].phase == "Running":
            result.measurements = result.measurements[:-1]
    return copy
