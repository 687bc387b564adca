"""Analysis runs in the controller's process: one asyncio task per run the plan asks for, measured
with the analysis package's providers, its verdict fed back to the engine (which is woken when a
run's phase changes).

Little here needs to survive a restart: the engine keeps every final verdict in
status.analysisRuns, and asks again (`plan.start_runs`) for any run still wanted without a verdict,
which a restarted controller then measures from the beginning under the same name. The one thing
kept is a dynamic canary's evidence (the sequential test's cumulative counts and latency threshold,
which every interval continues from): the status the reconciler writes carries it
(`status.dynamicEvidence`, see `keep_evidence`), in the same write as the decision the interval's
verdict led to, and a restarted controller reads it back from there.

Traffic figures per revision (builtin metrics, a dynamic canary's intervals, an A/B winner) come
from the router's own metrics in Prometheus (traffic.py), at the address the controller is given
(`--prometheus-url`); without one such a run ends in Error saying so, which pauses the rollout for
a human (never a verdict made up). A shadow's reply comparison cannot be made on Kubernetes (the
mesh drops mirrored replies): such a run is an Error at once."""

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
from rollwise.analysis.job_env import JobEnv
from rollwise.analysis.judgements import DynamicJudgement, Judgement, WinnerJudgement
from rollwise.analysis.measure import measure_due
from rollwise.analysis.providers import MeasureContext, Provider, default_providers
from rollwise.analysis.providers.kubernetes_job import jobs_of_run, uses_jobs
from rollwise.analysis.run import AnalysisRunState
from rollwise.analysis.secrets import secret_refs
from rollwise.analysis.secrets_kubernetes import read_secrets
from rollwise.analysis.sequential import Evidence
from rollwise.analysis.timestamps import parse_time, utc_now
from rollwise.engine import AnalysisRunRequest, Plan
from rollwise.platforms.kubernetes.names import AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.platforms.kubernetes.names import Rollout as RolloutResource
from rollwise.platforms.kubernetes.traffic import (
    NO_PROMETHEUS,
    ClusterBuiltin,
    ClusterTraffic,
    PrometheusReader,
    RevisionSeries,
    TrafficError,
)
from rollwise.spec.analysis import AnalysisTemplateSpec, Argument, Metric, Verdict
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import DynamicEvidence, RolloutStatus

log = logging.getLogger("rollwise.kubernetes.analysis")

FINAL: frozenset[Verdict] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
Key = tuple[str, str]  # (namespace, rollout)
Notify = Callable[[Key, str, Verdict, str | None], Awaitable[None]]
PROMETHEUS_ENV = "ROLLWISE_PROMETHEUS_URL"
SHADOW_COMPARE = (
    "shadow reply comparison cannot run on Kubernetes: the mesh drops the shadow's replies to mirrored "
    "requests, so there is nothing to compare (lint refuses `compare` with the istio, gatewayAPI and nginx "
    "routers); remove `compare` from the Rollout, or promote to accept, abort to roll back"
)


@dataclass
class Run:
    request: AnalysisRunRequest
    phase: Verdict = "Pending"
    message: str | None = None
    task: asyncio.Task[None] | None = None
    machine: AnalysisRunState | None = field(default=None, repr=False)
    # From the plan that started the run: the dynamic canary's weight, the A/B stage's start.
    weight: int = 0
    since: datetime | None = None
    judgement: Judgement | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Carried:
    """What a dynamic canary's last finished interval hands to the next: the evidence after it and
    the latency threshold held for the whole rollout."""

    prefix: str  # the run names' prefix, `<rollout>-<revision>-<attempt>`
    interval: int
    evidence: Evidence
    latency_threshold_ms: float | None

    def to_status(self) -> DynamicEvidence:
        counts = {k: v for k, v in self.evidence.to_dict().items() if v is not None}
        return DynamicEvidence(
            run=self.prefix, interval=self.interval, counts=counts, latency_threshold_ms=self.latency_threshold_ms
        )

    @classmethod
    def from_status(cls, kept: DynamicEvidence) -> Carried:
        return cls(kept.run, kept.interval, Evidence.from_dict(kept.counts), kept.latency_threshold_ms)


def run_prefix(name: str) -> str:
    """`<rollout>-<revision>-<attempt>` of a dynamic canary's run name (`...-dyn<interval>`)."""
    return name.rsplit("-dyn", 1)[0]


class AnalysisRunner:
    def __init__(
        self,
        client: AsyncClient,
        notify: Notify,
        *,
        clock: Callable[[], datetime] = utc_now,
        providers: dict[str, Provider] | None = None,
        prometheus_url: str | None = None,
    ) -> None:
        self.client = client
        self.notify = notify
        self.clock = clock
        self.providers = providers
        self.prometheus_url = prometheus_url or os.environ.get(PROMETHEUS_ENV) or None
        self._runs: dict[Key, dict[str, Run]] = {}
        # The last finished interval of each rollout's dynamic canary (evidence and latency
        # threshold carry over to the next interval), also kept in its status.
        self._dynamic: dict[Key, Carried] = {}

    def verdicts(self, key: Key) -> dict[str, Verdict]:
        return {name: run.phase for name, run in self._runs.get(key, {}).items()}

    def apply(self, key: Key, plan: Plan) -> None:
        runs = self._runs.setdefault(key, {})
        for request in plan.analysis:
            if request.name in plan.start_runs and request.name not in runs:
                run = runs[request.name] = Run(request)
                status = plan.status
                run.weight = status.dynamic.weight if status.dynamic is not None else 0
                run.since = parse_time(status.stage_started_at) if status.stage_started_at else None
                run.task = asyncio.create_task(self._run(key, run), name=f"rollwise-analysis-{request.name}")
        for name in plan.stop_runs:
            stopping = runs.get(name)
            if stopping is not None and stopping.phase not in FINAL:
                if stopping.judgement is not None:
                    stopping.judgement.terminate("no longer needed by the rollout")
                if stopping.task is not None:
                    stopping.task.cancel()
                stopping.phase, stopping.message = "Error", "terminated: no longer needed by the rollout"
        wanted = {r.name for r in plan.analysis}
        for name in [n for n, r in runs.items() if n not in wanted and r.phase in FINAL]:
            del runs[name]  # the engine keeps final verdicts in the status

    def keep_evidence(self, key: Key, old: RolloutStatus | None, new: RolloutStatus) -> RolloutStatus:
        """`new` (the status about to be written) with the dynamic canary's evidence, so that it
        survives a restart of the controller: taken from `old` when this process has none yet,
        dropped once the canary's revision or attempt is over."""
        previous = old.dynamic_evidence if old is not None else None
        if key not in self._dynamic and previous is not None:
            self._dynamic[key] = Carried.from_status(previous)
        carried = self._dynamic.get(key)
        current = f"{key[1]}-{new.current_revision}-{new.attempt}"
        kept: DynamicEvidence | None = None
        if carried is None or new.dynamic is None or carried.prefix != current:
            self._dynamic.pop(key, None)
        elif carried.interval < new.dynamic.interval:
            kept = carried.to_status()
        elif previous is not None and previous.run == current and previous.interval < new.dynamic.interval:
            # The plan has not taken the interval's verdict yet (this reconcile began before the
            # interval ended): the status keeps the evidence from before that interval, which a
            # restarted controller would measure again.
            kept = previous
        if kept == new.dynamic_evidence:
            return new
        return new.model_copy(update={"dynamic_evidence": kept})

    async def forget(self, key: Key) -> None:
        runs = self._runs.pop(key, {})
        self._dynamic.pop(key, None)
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
        if req.kind == "shadowCompare":
            await self._set(key, run, "Error", SHADOW_COMPARE)
            return
        if req.kind in ("dynamic", "abWinner"):
            await self._judge(key, run)
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
        providers = dict(self.providers or default_providers())
        if any(m.provider.builtin is not None for m in metrics):
            providers["builtin"] = await self._builtin(key, req)
        await self._set(key, run, "Running", None)
        while not machine.done:
            now = self.clock()
            wake = machine.wake_at(now)
            delay = 1.0 if wake is None else (wake - now).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)  # the run's own schedule (interval, initialDelay)
                continue
            await measure_due(machine, args, context, providers)
            if machine.phase != run.phase:
                await self._set(key, run, machine.phase, machine.message)
        await self._set(key, run, machine.phase, machine.message)

    async def _builtin(self, key: Key, req: AnalysisRunRequest) -> Provider:
        """Builtin metrics from the router's metrics in Prometheus; without a Prometheus, or for a
        rollout whose router has none, each measurement errs saying why."""
        if self.prometheus_url is None:
            return ClusterBuiltin(None, None)
        rollout = await self._rollout(key)
        series = RevisionSeries(self.client, rollout, req.revision) if rollout is not None else None
        return ClusterBuiltin(PrometheusReader(self.prometheus_url), series)

    async def _judge(self, key: Key, run: Run) -> None:
        """A dynamic canary's interval or an A/B winner, judged as on the local platform (the same
        judgement classes) from readings of the router's metrics in Prometheus."""
        req = run.request
        what = "dynamic canary intervals" if req.kind == "dynamic" else "A/B winner judgements"
        if self.prometheus_url is None:
            await self._set(
                key, run, "Error", NO_PROMETHEUS.format(what=what) + "; promote to accept, abort to roll back"
            )
            return
        rollout = await self._rollout(key)
        if rollout is None:
            return  # deleted meanwhile: the runner forgets it
        if key not in self._dynamic and rollout.status is not None and rollout.status.dynamic_evidence is not None:
            self._dynamic[key] = Carried.from_status(rollout.status.dynamic_evidence)
        series = RevisionSeries(self.client, rollout, req.revision)
        try:
            series.check()
        except TrafficError as exc:
            await self._set(key, run, "Error", f"{what}: {exc}")
            return
        # An A/B verdict is asked for once the experiment is over: it weighs what each variant
        # served since the experiment began.
        since = (run.since or self.clock()) if req.kind == "abWinner" else None
        revisions = [req.revision, req.stable_revision or ""]
        source = ClusterTraffic(PrometheusReader(self.prometheus_url), series, revisions, since=since)
        env = JobEnv(traffic=source.traffic, refresh=source.refresh, clock=self.clock)
        judgement: Judgement
        if req.kind == "dynamic":
            before = self._dynamic_before(key, req)
            judgement = DynamicJudgement(
                req,
                env,
                None,
                evidence=before.evidence if before is not None else None,
                weight=run.weight,
                latency_threshold_ms=before.latency_threshold_ms if before is not None else None,
            )
        else:
            judgement = WinnerJudgement(req, env, None, since=run.since)
        run.judgement = judgement
        await self._set(key, run, "Running", None)
        try:
            await judgement.run(lambda _measured: None)
        except TrafficError as exc:
            await self._set(key, run, "Error", f"{what}: {exc}; promote to accept, abort to roll back")
            return
        if isinstance(judgement, DynamicJudgement) and judgement.after is not None:
            # Kept before the verdict wakes the worker: the status written with the decision
            # the verdict leads to carries this evidence (keep_evidence).
            self._dynamic[key] = Carried(
                run_prefix(req.name), req.step or 0, judgement.after, judgement.latency_threshold_ms
            )
        await self._set(key, run, judgement.phase, judgement.message)

    def _dynamic_before(self, key: Key, req: AnalysisRunRequest) -> Carried | None:
        kept = self._dynamic.get(key)
        if kept is None or kept.prefix != run_prefix(req.name) or kept.interval >= (req.step or 0):
            return None
        return kept

    async def _rollout(self, key: Key) -> Rollout | None:
        try:
            obj = await self.client.get(RolloutResource, key[1], namespace=key[0])
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return Rollout.model_validate(obj.to_dict())  # type: ignore[no-untyped-call]

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
