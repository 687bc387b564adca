"""Analysis runs in the controller's process: one asyncio task per run the plan asks for, measured
with the analysis package's providers, its verdict fed back to the engine (which is woken when a
run's phase changes).

Nothing here needs to survive a restart: the engine keeps every final verdict in
status.analysisRuns, and asks again (`plan.start_runs`) for any run still wanted without a verdict,
which a restarted controller then measures from the beginning under the same name.

The judgements that weigh live traffic per revision (a dynamic canary's interval, an A/B winner, a
shadow's reply comparison) need request counters the Kubernetes platform does not collect: such a
run ends in Error at once with that reason, which pauses the rollout for a human (never a verdict
made up)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

from rollwise.analysis.args import ArgumentError, resolve_args
from rollwise.analysis.measure import measure_due
from rollwise.analysis.providers import MeasureContext, Provider
from rollwise.analysis.providers.kubernetes_job import jobs_of_run, uses_jobs
from rollwise.analysis.run import AnalysisRunState
from rollwise.analysis.secrets import secret_refs
from rollwise.analysis.secrets_kubernetes import read_secrets
from rollwise.analysis.timestamps import utc_now
from rollwise.engine import AnalysisRunRequest, Plan
from rollwise.platforms.kubernetes.names import AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.spec.analysis import AnalysisTemplateSpec, Argument, Metric, Verdict

log = logging.getLogger("rollwise.kubernetes.analysis")

FINAL: frozenset[Verdict] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
Key = tuple[str, str]  # (namespace, rollout)
Notify = Callable[[Key, str, Verdict, str | None], Awaitable[None]]
JUDGEMENTS = ("dynamic", "abWinner", "shadowCompare")


@dataclass
class Run:
    request: AnalysisRunRequest
    phase: Verdict = "Pending"
    message: str | None = None
    task: asyncio.Task[None] | None = None
    machine: AnalysisRunState | None = field(default=None, repr=False)


class AnalysisRunner:
    def __init__(
        self,
        client: AsyncClient,
        notify: Notify,
        *,
        clock: Callable[[], datetime] = utc_now,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.client = client
        self.notify = notify
        self.clock = clock
        self.providers = providers
        self._runs: dict[Key, dict[str, Run]] = {}

    def verdicts(self, key: Key) -> dict[str, Verdict]:
        return {name: run.phase for name, run in self._runs.get(key, {}).items()}

    def apply(self, key: Key, plan: Plan) -> None:
        runs = self._runs.setdefault(key, {})
        for request in plan.analysis:
            if request.name in plan.start_runs and request.name not in runs:
                run = runs[request.name] = Run(request)
                run.task = asyncio.create_task(self._run(key, run), name=f"rollwise-analysis-{request.name}")
        for name in plan.stop_runs:
            stopping = runs.get(name)
            if stopping is not None and stopping.phase not in FINAL:
                if stopping.task is not None:
                    stopping.task.cancel()
                stopping.phase, stopping.message = "Error", "terminated: no longer needed by the rollout"
        wanted = {r.name for r in plan.analysis}
        for name in [n for n, r in runs.items() if n not in wanted and r.phase in FINAL]:
            del runs[name]  # the engine keeps final verdicts in the status

    async def forget(self, key: Key) -> None:
        runs = self._runs.pop(key, {})
        await _cancel([r.task for r in runs.values() if r.task is not None])

    async def shutdown(self) -> None:
        tasks = [r.task for runs in self._runs.values() for r in runs.values() if r.task is not None]
        self._runs.clear()
        await _cancel(tasks)

    # --- one run ------------------------------------------------------------------------------

    async def _run(self, key: Key, run: Run) -> None:
        try:
            await self._measure(key, run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a provider must not leave the rollout waiting forever
            log.exception("analysis run %s failed", run.request.name)
            await self._set(key, run, "Error", f"the run failed: {type(exc).__name__}: {exc}")

    async def _measure(self, key: Key, run: Run) -> None:
        req = run.request
        if req.kind in JUDGEMENTS:
            await self._set(
                key,
                run,
                "Error",
                f"{req.kind} judgements need per-revision request counters, which the Kubernetes platform "
                "does not collect: promote to accept, abort to roll back",
            )
            return
        namespace = key[0]
        metrics: list[Metric] = []
        declared: list[Argument] = []
        for template, cluster in req.templates:
            spec = await self._template(template, cluster, namespace)
            if spec is None:
                kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
                await self._set(key, run, "Error", f"{kind} {template!r} not found; create it and resume")
                return
            metrics += spec.metrics
            declared += spec.args or []
        try:
            secrets = await read_secrets(self.client, namespace, secret_refs(metrics, declared))
            args = resolve_args(declared, dict(req.args), env=os.environ, secrets=secrets)
            machine = run.machine = AnalysisRunState(metrics, started_at=self.clock())
        except (ArgumentError, ValueError) as exc:
            await self._set(key, run, "Error", str(exc))
            return
        revisions = {"canary": req.revision}
        if req.stable_revision is not None:
            revisions["stable"] = req.stable_revision
        jobs = None
        if uses_jobs(metrics):
            # Job metrics run as batch/v1 Jobs owned by the Rollout (analysis/providers/kubernetes_job.py).
            jobs = await jobs_of_run(self.client, namespace, key[1], req.name)
        context = MeasureContext(
            clock=self.clock, env=os.environ, secrets=secrets, revisions=revisions, kubernetes_jobs=jobs
        )
        await self._set(key, run, "Running", None)
        while not machine.done:
            now = self.clock()
            wake = machine.wake_at(now)
            delay = 1.0 if wake is None else (wake - now).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)  # the run's own schedule (interval, initialDelay)
                continue
            await measure_due(machine, args, context, self.providers)
            if machine.phase != run.phase:
                await self._set(key, run, machine.phase, machine.message)
        await self._set(key, run, machine.phase, machine.message)

    async def _set(self, key: Key, run: Run, phase: Verdict, message: str | None) -> None:
        if (phase, message) == (run.phase, run.message):
            return
        changed = phase != run.phase
        run.phase, run.message = phase, message
        if changed:
            await self.notify(key, run.request.name, phase, message)

    async def _template(self, name: str, cluster: bool, namespace: str) -> AnalysisTemplateSpec | None:
        try:
            if cluster:
                spec = (await self.client.get(ClusterAnalysisTemplate, name)).spec
            else:
                spec = (await self.client.get(AnalysisTemplate, name, namespace=namespace)).spec
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return AnalysisTemplateSpec.model_validate(spec)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
