"""Analysis runs on the local platform: started and stopped as the engine's plan says, measured in
their own tasks, persisted after every change (so a restarted control plane resumes them), and
their verdicts fed back to the engine, which is woken whenever a run's phase changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError

from rollwise.analysis.job_env import JobEnv, MeasurementOut
from rollwise.analysis.judgements import CompareJudgement, DynamicJudgement, WinnerJudgement
from rollwise.analysis.timestamps import parse_time
from rollwise.engine import AnalysisRunRequest, Plan
from rollwise.platforms.local.daemon import run_request
from rollwise.platforms.local.daemon.jobs import FINAL, FinishedJob, Job, TemplateJob
from rollwise.platforms.local.store import EventType, Store, StoreError
from rollwise.spec.analysis import AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate, Verdict
from rollwise.spec.common import duration_seconds
from rollwise.spec.rollout import Rollout

log = logging.getLogger("rollwise.daemon.analysis")

EventSink = Callable[[str, EventType, str, str], None]
# Final runs the engine no longer asks about are kept this long per rollout, newest last (the
# engine remembers final verdicts itself; these serve `rollwise status`).
KEEP_FINISHED = 50


@dataclass
class RunHandle:
    rollout: str
    request: AnalysisRunRequest
    job: Job
    task: asyncio.Task[None] | None = None
    reported: Verdict | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AnalysisRunner:
    def __init__(
        self, store: Store, env_for: Callable[[str], JobEnv], wake: Callable[[str], None], event: EventSink
    ) -> None:
        self.store = store
        self.env_for = env_for
        self.wake = wake
        self.event = event
        self._runs: dict[str, dict[str, RunHandle]] = {}

    # --- what the engine reads ----------------------------------------------------------------

    def verdicts(self, rollout: str) -> dict[str, Verdict]:
        return {name: h.job.phase for name, h in self._load(rollout).items()}

    def describe(self, rollout: str) -> list[dict[str, Any]]:
        return [
            {
                "run": name,
                "kind": h.request.kind,
                "revision": h.request.revision,
                "phase": h.job.phase,
                "message": h.job.message,
                "metrics": h.job.metrics(),
            }
            for name, h in self._load(rollout).items()
        ]

    # --- carrying out the plan ----------------------------------------------------------------

    def apply(self, rollout: Rollout, plan: Plan) -> None:
        name = rollout.metadata.name
        runs = self._load(name)
        for request in plan.analysis:
            if request.name in plan.start_runs and request.name not in runs:
                handle = RunHandle(name, request, self._create(rollout, plan, request))
                runs[request.name] = handle
                self.event(name, "Normal", "AnalysisRunStarted", f"{request.kind} run {request.name} started")
                self._launch(handle)
        for run in plan.stop_runs:
            stopping = runs.get(run)
            if stopping is not None and stopping.job.phase not in FINAL:
                stopping.job.terminate("no longer needed by the rollout")
                if stopping.task is not None:
                    stopping.task.cancel()
                self._report(stopping, [])
        self._trim(name, {r.name for r in plan.analysis})

    async def forget(self, rollout: str) -> None:
        """The rollout is deleted: stop its runs; their rows go with the rollout."""
        runs = self._runs.pop(rollout, {})
        tasks = [h.task for h in runs.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self) -> None:
        """Leave every run as persisted, for the next control plane to resume."""
        for rollout in list(self._runs):
            tasks = [h.task for h in self._runs[rollout].values() if h.task is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- runs ---------------------------------------------------------------------------------

    def _create(self, rollout: Rollout, plan: Plan, req: AnalysisRunRequest) -> Job:
        name = rollout.metadata.name
        env = self.env_for(name)
        status = plan.status
        if req.kind == "dynamic":
            weight = status.dynamic.weight if status.dynamic is not None else 0
            before = self._dynamic_before(name, req)
            return DynamicJudgement(
                req,
                env,
                None,
                evidence=before.after if before is not None else None,
                weight=weight,
                latency_threshold_ms=before.latency_threshold_ms if before is not None else None,
            )
        if req.kind == "abWinner":
            since = parse_time(status.stage_started_at) if status.stage_started_at else None
            return WinnerJudgement(req, env, None, since=since)
        if req.kind == "shadowCompare":
            shadow = rollout.spec.strategy.shadow
            seconds = duration_seconds(shadow.duration) if shadow is not None else 0.0
            return CompareJudgement(req, env, None, duration_s=seconds)
        metrics, declared = [], []
        for template_name, cluster in req.templates:
            spec = self._template(template_name, cluster, rollout.metadata.namespace)
            if spec is None:
                kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
                return FinishedJob("Error", f"{kind} {template_name!r} is not applied; apply it and resume")
            metrics += spec.metrics
            declared += spec.args or []
        if not metrics:
            return FinishedJob("Error", "the analysis names no template")
        try:
            return TemplateJob(req, metrics, declared, env, started_at=env.clock())
        except ValueError as exc:  # two templates measuring metrics of one name
            return FinishedJob("Error", str(exc))

    def _template(self, name: str, cluster: bool, namespace: str | None) -> AnalysisTemplateSpec | None:
        kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
        record = self.store.get_resource(kind, "" if cluster else namespace or "default", name)
        if record is None:
            return None
        model = ClusterAnalysisTemplate if cluster else AnalysisTemplate
        return model.model_validate(record.document).spec

    def _dynamic_before(self, rollout: str, req: AnalysisRunRequest) -> DynamicJudgement | None:
        """A dynamic canary's evidence (and its latency threshold) accumulate over its intervals:
        the last interval's judgement to start from."""
        prefix = req.name.rsplit("-dyn", 1)[0]
        best: tuple[int, DynamicJudgement] | None = None
        for h in self._runs.get(rollout, {}).values():
            job = h.job
            if (
                isinstance(job, DynamicJudgement)
                and h.request.name.startswith(prefix + "-dyn")
                and job.after is not None
                and (h.request.step or 0) < (req.step or 0)
                and (best is None or (h.request.step or 0) > best[0])
            ):
                best = (h.request.step or 0, job)
        return None if best is None else best[1]

    def _launch(self, handle: RunHandle) -> None:
        async def run() -> None:
            try:
                await handle.job.run(lambda out: self._report(handle, out))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a job must not leave the rollout waiting forever
                log.exception("analysis run %s failed", handle.request.name)
                handle.job = FinishedJob("Error", f"the run failed: {type(exc).__name__}: {exc}")
                self._report(handle, [])

        handle.task = asyncio.create_task(run(), name=f"rollwise-analysis-{handle.request.name}")

    def _report(self, handle: RunHandle, measured: Sequence[MeasurementOut]) -> None:
        job, rollout, run = handle.job, handle.rollout, handle.request.name
        try:
            for m in measured:
                self.store.add_measurement(rollout, run, m.metric, phase=m.phase, value=m.value, message=m.message)
            state = {"request": run_request.to_json(handle.request), **job.state()}
            self.store.save_run_state(rollout, run, job.phase, job.message, state)
        except StoreError as exc:
            log.warning("could not save analysis run %s: %s", run, exc)
        if job.phase == handle.reported:
            return
        handle.reported = job.phase
        if job.phase in FINAL:
            kind: EventType = "Normal" if job.phase == "Successful" else "Warning"
            self.event(rollout, kind, f"Analysis{job.phase}", f"{handle.request.kind} run {run}: {job.message or ''}")
        self.wake(rollout)

    def _trim(self, rollout: str, wanted: set[str]) -> None:
        runs = self._runs.get(rollout, {})
        finished = [n for n, h in runs.items() if n not in wanted and h.job.phase in FINAL]
        for name in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del runs[name]

    # --- resuming -----------------------------------------------------------------------------

    def _load(self, rollout: str) -> dict[str, RunHandle]:
        """The runs of a rollout, read from the store the first time it is asked about (after a
        restart): final ones as verdicts, the others resumed where their state left them."""
        runs = self._runs.get(rollout)
        if runs is not None:
            return runs
        runs = self._runs[rollout] = {}
        try:
            records = self.store.analysis_runs(rollout)
        except StoreError:
            return runs
        for record in records:
            state = self.store.run_state(rollout, record.name)
            resumed = self._resume(rollout, record.name, record.phase, record.message, state)
            if resumed is None:
                continue
            runs[record.name] = resumed
            if resumed.job.phase not in FINAL:
                self._launch(resumed)
        return runs

    def _resume(
        self, rollout: str, name: str, phase: str, message: str | None, state: dict[str, Any] | None
    ) -> RunHandle | None:
        if state is None or "request" not in state:
            return None
        try:
            req = run_request.from_json(state["request"])
            job: Job
            kind = state.get("job")
            final = phase in FINAL
            env = self.env_for(rollout)
            if kind == "template" and not final:
                job = TemplateJob.resume(req, state, env)
            elif kind == "dynamic":
                job = DynamicJudgement(req, env, state)
            elif kind == "abWinner" and not final:
                job = WinnerJudgement(req, env, state)
            elif kind == "shadowCompare" and not final:
                job = CompareJudgement(req, env, state)
            else:
                verdict: Verdict = cast(Verdict, phase) if final else "Error"
                job = FinishedJob(verdict, message or "the control plane restarted and could not resume the run")
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            log.warning("analysis run %s cannot be resumed: %s", name, exc)
            return None
        return RunHandle(rollout, req, job, reported=job.phase)
