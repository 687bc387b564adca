"""The level-based loop: one worker per rollout, which calls the engine once per wake-up (an
apply, a command, a replica change, an analysis verdict, the plan's requeue_after, a proxy gone, or
a periodic resync), carries the plan out, writes the status only when it changed, and records
events for what changed. Everything the next call needs is in the store, so a control plane
killed at any point continues exactly where its successor reads it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rollwise.analysis.args import SecretResolver
from rollwise.analysis.counters import ProxyTraffic
from rollwise.analysis.job_env import JobEnv
from rollwise.analysis.timestamps import utc_now
from rollwise.analysis.waiting import wait_event
from rollwise.engine import Command, Plan, reconcile
from rollwise.platforms import transitions
from rollwise.platforms.local.daemon import flags_env
from rollwise.platforms.local.daemon.analysis_runner import AnalysisRunner
from rollwise.platforms.local.daemon.carry import Carrier
from rollwise.platforms.local.daemon.observe import observe
from rollwise.platforms.local.daemon.proxies import Proxies, ProxyError
from rollwise.platforms.local.store import (
    EventType,
    RolloutNotFoundError,
    RolloutRecord,
    StaleWriteError,
    Store,
    StoreError,
)
from rollwise.platforms.local.supervisor import ReplicaView, Supervisor
from rollwise.spec.rollout import Rollout
from rollwise.spec.status import CommandRecord
from rollwise.spec.workload import ProcessTemplate

log = logging.getLogger("rollwise.daemon.controller")

# Even with nothing to wake it, a worker looks again this often (a proxy that died, a port that
# became free): level-based, so an extra look costs a reconcile that changes nothing.
RESYNC_SECONDS = 5.0
RETRY_SECONDS = 2.0
SAMPLE_SECONDS = 1.0


def load_rollout(record: RolloutRecord) -> Rollout:
    """The stored rollout with its status (the engine's memory) and its generation."""
    doc = record.spec
    metadata = {**doc.get("metadata", {}), "generation": record.generation}
    status = record.status or None
    return Rollout.model_validate({**doc, "metadata": metadata, "status": status})


class Worker:
    def __init__(self, controller: Controller, name: str) -> None:
        self.controller = controller
        self.name = name
        self.lock = asyncio.Lock()
        self.wakeup = asyncio.Event()
        self.commands: list[Command] = []
        self.next_at = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=f"rollwise-worker-{self.name}")

    async def stop(self) -> None:
        """Stop after the reconcile in progress, if any: one cut short could leave a process
        started but not yet recorded anywhere."""
        if self.task is None:
            return
        async with self.lock:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def wake(self) -> None:
        self.wakeup.set()

    async def _loop(self) -> None:
        while True:
            delay = self.next_at - time.monotonic()
            if delay > 0:
                await wait_event(self.wakeup, delay)
            self.wakeup.clear()
            async with self.lock:
                await self.reconcile_once()

    async def reconcile_once(self) -> Plan | None:
        try:
            return await self.controller.reconcile(self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("reconciling %s failed", self.name)
            self.controller.event(self.name, "Warning", "ReconcileFailed", f"{type(exc).__name__}: {exc}")
            self.next_at = time.monotonic() + RETRY_SECONDS
            return None


class Controller:
    def __init__(
        self,
        store: Store,
        supervisor: Supervisor,
        proxies: Proxies,
        *,
        clock: Callable[[], datetime] = utc_now,
        secrets: SecretResolver | None = None,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.supervisor = supervisor
        self.proxies = proxies
        self.clock = clock
        self.workers: dict[str, Worker] = {}
        self.carriers: dict[str, Carrier] = {}
        self.traffic: dict[str, ProxyTraffic] = {}
        self.runner = AnalysisRunner(store, self._job_env, self.wake, self.event)
        self._templates: dict[tuple[str, str], ProcessTemplate] = {}
        self._sampler: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        names = {r.name for r in self.store.list_rollouts()}
        for name in sorted(names):
            self._worker(name)
        # What an earlier control plane left for rollouts deleted meanwhile goes now.
        for rollout, revision in list(self.supervisor.snapshot()):
            if rollout not in names:
                self._spawn(self.supervisor.stop_revision(rollout, revision))
        for rollout in self.proxies.rollouts() - names:
            self._spawn(self.proxies.stop(rollout))
        self._sampler = asyncio.create_task(self._sample_loop(), name="rollwise-sampler")

    async def shutdown(self, stop_processes: bool) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        for worker in list(self.workers.values()):
            await worker.stop()
        await self.runner.shutdown()
        await self.supervisor.shutdown(stop_processes=stop_processes)
        if stop_processes:
            await self.proxies.stop_all()
        for task in list(self._background):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _worker(self, name: str) -> Worker:
        worker = self.workers.get(name)
        if worker is None:
            worker = self.workers[name] = Worker(self, name)
            worker.start()
        return worker

    # --- wake-ups ---------------------------------------------------------------------------

    def wake(self, name: str) -> None:
        worker = self.workers.get(name)
        if worker is not None:
            worker.wake()

    def on_replica_change(self, view: ReplicaView) -> None:
        self.wake(view.rollout)

    async def drain(self, view: ReplicaView) -> None:
        carrier = self.carriers.get(view.rollout)
        if carrier is not None:
            # The supervisor bounds the drain by the grace period; the wait here needs no limit.
            await carrier.drain(view, timeout=3600.0)

    async def reconcile_now(self, name: str) -> Plan | None:
        """Reconcile at once and return the plan (an apply waits for it, so that what it answers
        and the next `get` agree)."""
        worker = self._worker(name)
        async with worker.lock:
            return await worker.reconcile_once()

    async def command(self, name: str, command: Command) -> CommandRecord | None:
        worker = self._worker(name)
        async with worker.lock:
            worker.commands.append(command)
            plan = await worker.reconcile_once()
        return None if plan is None else plan.status.last_command

    async def delete(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        if worker is not None:
            await worker.stop()
        await self.runner.forget(name)
        self.store.delete_rollout(name)
        revisions = [rev for (rollout, rev) in self.supervisor.snapshot() if rollout == name]
        await asyncio.gather(*(self.supervisor.stop_revision(name, rev) for rev in revisions))
        await self.proxies.stop(name)
        self.carriers.pop(name, None)
        self.traffic.pop(name, None)
        for key in [k for k in self._templates if k[0] == name]:
            del self._templates[key]

    # --- one reconcile ----------------------------------------------------------------------

    async def reconcile(self, worker: Worker) -> Plan | None:
        name = worker.name
        record = self.store.get_rollout(name)
        if record is None:
            return None
        try:
            rollout = load_rollout(record)
        except ValidationError as exc:
            # Only a spec from another version of rollwise can get here: apply validates.
            self.event(name, "Warning", "InvalidSpec", str(exc).splitlines()[0])
            worker.next_at = time.monotonic() + RESYNC_SECONDS
            return None
        carrier = self._carrier(name)
        now = self.clock()
        seen = observe(carrier.views(), carrier.desired, rollout.spec.min_ready_seconds, now)
        commands, worker.commands = worker.commands, []
        observed = flags_env.with_config(seen.observed, self.store, self.supervisor.state_dir, rollout)
        plan = reconcile(rollout, observed, now, self.runner.verdicts(name), commands)
        self._record_revision(rollout, plan)
        problems = await carrier.carry(rollout, plan)
        self.runner.apply(rollout, plan)
        status = plan.status.model_copy(update={"endpoints": carrier.endpoints() or None})
        if problems:
            status = status.model_copy(update={"message": "; ".join([status.message or "", *problems]).lstrip("; ")})
        doc = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        try:
            self.store.write_status(name, doc, expected_version=record.version)
        except StaleWriteError:
            # Applied meanwhile: plan again on the new spec, with the commands not yet settled.
            worker.commands = commands + worker.commands
            worker.wake()
            return plan
        except RolloutNotFoundError:
            return plan
        for kind, reason, message in transitions.changes(rollout, rollout.status, status):
            self.event(name, kind, reason, message)
        self._prune(name, plan, carrier.views())
        delays = [RESYNC_SECONDS]
        if plan.requeue_after is not None:
            delays.append(plan.requeue_after)
        if seen.next_available_at is not None:
            delays.append((seen.next_available_at - now).total_seconds())
        if problems:
            delays.append(RETRY_SECONDS)
        worker.next_at = time.monotonic() + max(0.0, min(delays))
        return plan

    def _carrier(self, name: str) -> Carrier:
        carrier = self.carriers.get(name)
        if carrier is None:
            carrier = self.carriers[name] = Carrier(
                name, self.supervisor, self.proxies, lambda rev: self._template(name, rev), self.event
            )
        return carrier

    def _record_revision(self, rollout: Rollout, plan: Plan) -> None:
        """The spec's revision with its template, so that it can be started again after the spec
        moved on (an undo)."""
        name = rollout.metadata.name
        process = rollout.spec.process
        if process is None or self.store.revision(name, plan.revision) is not None:
            return
        process = flags_env.with_flags(process, self.store, self.supervisor.state_dir, rollout)
        template = process.model_dump(by_alias=True, exclude_none=True, mode="json")
        self.store.record_revision(name, plan.revision, template)
        self._templates[(name, plan.revision)] = process

    def _template(self, name: str, revision: str) -> ProcessTemplate | None:
        cached = self._templates.get((name, revision))
        if cached is not None:
            return cached
        record = self.store.revision(name, revision)
        if record is None:
            return None
        template = self._templates[(name, revision)] = ProcessTemplate.model_validate(record.template)
        return template

    def _prune(self, name: str, plan: Plan, views: dict[str, list[ReplicaView]]) -> None:
        keep = set(plan.retained_revisions) | set(plan.replicas) | set(views)
        try:
            if self.store.prune_revisions(name, keep):
                for key in [k for k in self._templates if k[0] == name and k[1] not in keep]:
                    del self._templates[key]
        except StoreError as exc:
            log.warning("pruning revisions of %s: %s", name, exc)

    # --- traffic and analysis -------------------------------------------------------------------

    def traffic_of(self, name: str) -> ProxyTraffic:
        traffic = self.traffic.get(name)
        if traffic is None:
            traffic = self.traffic[name] = ProxyTraffic()
        return traffic

    def _job_env(self, name: str) -> JobEnv:
        async def refresh() -> None:
            await self.sample(name)

        return JobEnv(traffic=self.traffic_of(name), refresh=refresh, clock=self.clock, secrets=self.secrets)

    async def sample(self, name: str) -> None:
        """Read the counters of every proxy of the rollout; a proxy gone wakes its worker, whose
        reconcile starts it again."""
        docs = []
        for proc in self.proxies.of(name):
            if not proc.alive():
                self.wake(name)
                continue
            try:
                docs.append(await self.proxies.stats(proc))
            except ProxyError:
                self.wake(name)
        if docs:
            self.traffic_of(name).record(docs)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            for name in list(self.workers):
                try:
                    await self.sample(name)
                except Exception:
                    log.exception("sampling the proxies of %s failed", name)

    # --- events ---------------------------------------------------------------------------------

    def event(self, name: str, kind: EventType, reason: str, message: str) -> None:
        log.info("%s: %s %s: %s", name, kind, reason, message)
        try:
            self.store.add_event(name, kind, reason, message)
        except StoreError as exc:
            if not isinstance(exc, RolloutNotFoundError):
                log.warning("could not record an event of %s: %s", name, exc)
