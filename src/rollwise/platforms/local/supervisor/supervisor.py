"""The supervisor: runs each revision's replicas as processes, probes them, restarts them when they
crash, and stops them with a drain. One asyncio task watches every process (liveness, restarts,
backoff reset, log rotation); each running replica has a probe task; each stop runs as its own task.

Everything the next control plane needs is saved through `ReplicaRecords` as it happens, so a
control plane may die at any point: its successor's `start()` adopts the processes still running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from rollwise.platforms.local.supervisor import command, logs
from rollwise.platforms.local.supervisor.backoff import BackoffPolicy
from rollwise.platforms.local.supervisor.probe import http_ok
from rollwise.platforms.local.supervisor.process import ProcessHandle, working_dir
from rollwise.platforms.local.supervisor.records import ReplicaRecord, ReplicaRecords
from rollwise.platforms.local.supervisor.replica import Replica, readiness_for
from rollwise.platforms.local.supervisor.stopping import terminate
from rollwise.platforms.local.supervisor.view import ChangeHook, DrainHook, Phase, ReplicaView
from rollwise.spec.workload import ProcessTemplate

log = logging.getLogger("rollwise.supervisor")

Group = tuple[str, str]  # (rollout, revision)


@dataclass(frozen=True)
class Tuning:
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    log_max_bytes: int = 10 * 1024 * 1024
    rotate_interval: float = 2.0
    # How soon a crash is noticed; a /proc read per replica per tick is cheap.
    poll_interval: float = 0.2
    # Until a replica is first ready it is probed this often (at most), whatever its period: the
    # rollout waits on readiness, and a refused connection costs nothing.
    startup_probe_interval: float = 0.2


class Supervisor:
    def __init__(
        self,
        state_dir: Path,
        records: ReplicaRecords,
        on_change: ChangeHook | None = None,
        *,
        drain: DrainHook | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self._records = records
        self._on_change = on_change
        self._drain = drain
        self._tuning = tuning or Tuning()
        self._groups: dict[Group, dict[int, Replica]] = {}
        self._last_views: dict[tuple[str, str, int], ReplicaView] = {}
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # --- public API ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what earlier control planes left running: live processes (same pid and start
        time) are kept and probed once before this returns, so the first snapshot already says
        what can be routed to; dead ones are treated as crashed; unfinished stops are finished."""
        async with self._lock:
            if self._started:
                return
            self._started = True
            adopted: list[Replica] = []
            for record in self._records.list():
                replica = self._adopt(record)
                if replica is not None and replica.process is not None:
                    adopted.append(replica)
            results = await asyncio.gather(*(self._probe_once(r) for r in adopted))
            for replica, ok in zip(adopted, results, strict=True):
                if replica.record.stopping:
                    self._begin_stop(replica)
                    continue
                # The record says whether it was ready; this probe continues from there, so a
                # ready replica keeps its ready_since (and availability) across the restart.
                replica.readiness.ready = replica.readiness.was_ready = replica.record.ready_since is not None
                replica.phase = "ready" if replica.readiness.ready else "starting"
                self._observe(replica, ok)
                self._start_probing(replica)
                self._notify(replica)
            self._watch = asyncio.create_task(self._watch_loop(), name="rollwise-supervisor-watch")

    async def converge(
        self,
        rollout: str,
        revision: str,
        template: ProcessTemplate,
        replicas: int,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Start or stop replicas of this revision until `replicas` are active. Returns once new
        processes are launched and surplus ones are draining; stops finish in the background
        (`stop_revision` waits for them). A changed template or extra env is used from each
        replica's next start: running processes are never restarted to apply it."""
        if replicas < 0:
            raise ValueError("replicas must not be negative")
        logs.log_path(self.state_dir, rollout, revision, 0)  # refuse unusable names up front
        await self.start()
        async with self._lock:
            self._check_open()
            extra = dict(extra_env or {})
            group = self._groups.setdefault((rollout, revision), {})
            active = [r for r in group.values() if r.active]
            for replica in active:
                if replica.use_template(template, extra):
                    self._persist(replica.record)
            for _ in range(replicas - len(active)):
                index = next(i for i in range(len(group) + 1) if i not in group)
                replica = group[index] = Replica.create(rollout, revision, index, template, extra)
                self._spawn(replica)
            for replica in self._victims(active, len(active) - replicas):
                self._begin_stop(replica)

    async def stop_revision(self, rollout: str, revision: str) -> None:
        """Stop every replica of the revision (drain, SIGTERM, SIGKILL) and wait until they are gone."""
        await self.start()
        async with self._lock:
            self._check_open()
            tasks = [self._begin_stop(r) for r in list(self._groups.get((rollout, revision), {}).values())]
        await asyncio.gather(*tasks)

    async def shutdown(self, stop_processes: bool) -> None:
        """With `stop_processes`, stop every replica and wait. Without, leave them running for the
        next control plane to adopt (their records are already saved); unfinished stops are
        recorded as such and completed by that successor."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._watch is not None:
                self._watch.cancel()
            if stop_processes:
                tasks = [self._begin_stop(r) for r in self._all()]
            else:
                tasks = []
                for replica in self._all():
                    for task in (replica.probe_task, replica.stop_task):
                        if task is not None:
                            task.cancel()
                            tasks.append(task)
        for task in [*tasks, *([self._watch] if self._watch else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def snapshot(self) -> dict[Group, list[ReplicaView]]:
        policy = self._tuning.backoff
        return {key: [group[i].view(policy) for i in sorted(group)] for key, group in self._groups.items() if group}

    def log_path(self, rollout: str, revision: str, index: int) -> Path:
        return logs.log_path(self.state_dir, rollout, revision, index)

    # --- starting, crashing, adopting ---------------------------------------------------------

    def _spawn(self, replica: Replica) -> None:
        rec = replica.record
        if replica.phase == "crashed":
            rec.restarts += 1
            rec.streak += 1
        port = command.free_port({r.record.port for r in self._all() if r.record.port is not None})
        env = command.replica_env(
            replica.template, rec.extra_env, rollout=rec.rollout, revision=rec.revision, index=rec.index, port=port
        )
        argv = command.argv(replica.template, env)
        path = self.log_path(rec.rollout, rec.revision, rec.index)
        logs.rotate_if_large(path, self._tuning.log_max_bytes)
        try:
            fd = logs.open_for_process(path)
            try:
                handle = ProcessHandle.spawn(argv, env, working_dir(replica.template.working_dir), fd)
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            # A missing executable or working directory: retried with backoff like a crash, so a
            # file that appears later (a build finishing) is picked up. (ValueError: a NUL byte.)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._crashed(replica, f"could not start {argv[0]!r}: {reason}")
            return
        replica.process = handle
        replica.phase = "starting"
        replica.restart_at = None
        replica.readiness = readiness_for(replica.template)
        rec.pid, rec.start_time, rec.port = handle.pid, handle.start_time, port
        rec.started_at, rec.ready_since = time.time(), None
        self._persist(rec)
        again = f" (restart {rec.restarts})" if rec.restarts else ""
        logs.note(path, f"started pid {handle.pid} on port {port}{again}: {logs.shorten(shlex.join(argv))}")
        self._start_probing(replica)
        self._notify(replica)

    def _crashed(self, replica: Replica, reason: str) -> None:
        self._stop_probing(replica)
        rec = replica.record
        delay = self._tuning.backoff.delay(rec.streak)
        replica.process = None
        replica.phase = "crashed"
        replica.last_exit = reason
        replica.restart_at = time.monotonic() + delay
        rec.pid = rec.start_time = rec.port = None
        rec.ready_since = None
        self._persist(rec)
        logs.note(self.log_path(rec.rollout, rec.revision, rec.index), f"{reason}; restarting in {delay:g}s")
        self._notify(replica)

    def _adopt(self, record: ReplicaRecord) -> Replica | None:
        try:
            template = ProcessTemplate.model_validate(record.template)
        except ValidationError as exc:
            log.error("replica record %s has an unusable template, left alone: %s", record.key, exc)
            return None
        replica = Replica(record=record, template=template, readiness=readiness_for(template))
        self._groups.setdefault(replica.group, {})[record.index] = replica
        path = self.log_path(record.rollout, record.revision, record.index)
        if record.pid is not None:
            handle = ProcessHandle(record.pid, record.start_time)
            if record.start_time is not None and not handle.exited():
                replica.process = handle
                logs.note(path, f"pid {record.pid} adopted by a new control plane")
                return replica
            if record.start_time is not None:
                handle.signal_group(signal.SIGKILL)  # its leader is gone; what it spawned may not be
        if record.stopping:
            self._forget(replica)
            return None
        replica.phase = "crashed"  # so its next start counts as a restart
        self._crashed(replica, "found not running when the control plane started")
        return replica

    # --- stopping -----------------------------------------------------------------------------

    def _victims(self, active: list[Replica], count: int) -> list[Replica]:
        """Replicas that serve nothing go first (crashed, starting, unready), then the newest
        index: a scale-down should not remove capacity while keeping a broken replica."""
        if count <= 0:
            return []
        rank = {"crashed": 0, "starting": 1, "unready": 2, "ready": 3}
        return sorted(active, key=lambda r: (rank.get(r.phase, 0), -r.record.index))[:count]

    def _begin_stop(self, replica: Replica) -> asyncio.Task[None]:
        if replica.stop_task is not None:
            return replica.stop_task
        self._stop_probing(replica)
        replica.phase = "draining"
        replica.restart_at = None
        replica.record.stopping = True
        replica.record.ready_since = None
        self._persist(replica.record)
        self._notify(replica)
        replica.stop_task = asyncio.create_task(self._stop(replica), name=f"rollwise-stop-{replica.record.key}")
        return replica.stop_task

    async def _stop(self, replica: Replica) -> None:
        rec = replica.record
        path = self.log_path(rec.rollout, rec.revision, rec.index)
        handle = replica.process
        grace = float(replica.template.termination_grace_period_seconds)
        if handle is not None and not handle.exited():
            await self._run_drain(replica, grace)
            logs.note(path, f"stopping pid {handle.pid}: SIGTERM, SIGKILL after {grace:g}s")
            outcome = await terminate(handle, grace, poll=min(0.05, self._tuning.poll_interval))
            logs.note(path, f"pid {handle.pid} {outcome}")
        elif handle is not None:
            logs.note(path, f"pid {handle.pid} {handle.finish()} while being stopped")
        self._forget(replica)

    async def _run_drain(self, replica: Replica, grace: float) -> None:
        """The caller's hook takes the replica out of the routes and waits for its in-flight
        requests; it gets at most the grace period, and its failure does not prevent the stop."""
        if self._drain is None:
            return
        try:
            await asyncio.wait_for(self._drain(replica.view(self._tuning.backoff)), timeout=grace)
        except TimeoutError:
            log.warning("drain of %s took longer than its %gs grace period", replica.record.key, grace)
        except Exception:
            log.exception("drain hook failed for %s", replica.record.key)

    def _forget(self, replica: Replica) -> None:
        rec = replica.record
        group = self._groups.get(replica.group, {})
        if group.get(rec.index) is replica:
            del group[rec.index]
            if not group:
                del self._groups[replica.group]
        self._unpersist(rec)
        replica.process = None
        replica.phase = "stopped"
        self._notify(replica)
        self._last_views.pop(rec.key, None)

    # --- watching -----------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        next_rotation = 0.0
        while True:
            now = time.monotonic()
            for replica in list(self._all()):
                try:
                    self._check(replica, now)
                except Exception:
                    log.exception("supervising %s failed", replica.record.key)
            if now >= next_rotation:
                next_rotation = now + self._tuning.rotate_interval
                paths = [self.log_path(*r.record.key) for r in self._all()]
                try:
                    await asyncio.to_thread(_rotate_all, paths, self._tuning.log_max_bytes)
                except OSError:
                    log.exception("log rotation failed")
            await asyncio.sleep(self._tuning.poll_interval)

    def _check(self, replica: Replica, now: float) -> None:
        if not replica.active:
            return  # its stop task watches it
        handle = replica.process
        if handle is None:
            if replica.restart_at is not None and now >= replica.restart_at:
                self._spawn(replica)
            return
        if handle.exited():
            self._crashed(replica, handle.finish())
            return
        rec = replica.record
        up_for = time.time() - (rec.started_at or time.time())
        if rec.streak and up_for >= self._tuning.backoff.reset_after:
            rec.streak = 0  # up long enough: the next crash starts from the first delay again
            self._persist(rec)
            self._notify(replica)

    # --- readiness ----------------------------------------------------------------------------

    async def _probe_once(self, replica: Replica) -> bool:
        probe = replica.template.readiness_probe
        port = replica.record.port
        return port is not None and await http_ok(port, probe.path, float(probe.timeout_seconds))

    def _start_probing(self, replica: Replica) -> None:
        self._stop_probing(replica)
        replica.probe_task = asyncio.create_task(self._probe_loop(replica), name=f"rollwise-probe-{replica.record.key}")

    def _stop_probing(self, replica: Replica) -> None:
        if replica.probe_task is not None:
            replica.probe_task.cancel()
            replica.probe_task = None

    async def _probe_loop(self, replica: Replica) -> None:
        period = float(replica.template.readiness_probe.period_seconds)
        fast = min(period, self._tuning.startup_probe_interval)
        while True:
            await asyncio.sleep(fast if replica.phase == "starting" else period)
            self._observe(replica, await self._probe_once(replica))

    def _observe(self, replica: Replica, ok: bool) -> None:
        if replica.phase not in ("starting", "ready", "unready"):
            return  # a result that arrived after a crash or a stop began
        ready = replica.readiness.observe(ok)
        phase: Phase = "ready" if ready else "unready" if replica.readiness.was_ready else "starting"
        if phase == replica.phase:
            return
        replica.phase = phase
        replica.record.ready_since = time.time() if ready else None
        self._persist(replica.record)
        self._notify(replica)

    # --- bookkeeping --------------------------------------------------------------------------

    def _all(self) -> Iterator[Replica]:
        for group in list(self._groups.values()):
            yield from list(group.values())

    def _persist(self, record: ReplicaRecord) -> None:
        # Supervision goes on when the store fails (a busy database, a full disk): what runs is
        # known here; only a successor's adoption would suffer, and the next save repairs it.
        try:
            self._records.save(record)
        except Exception:
            log.exception("could not save the record of %s", record.key)

    def _unpersist(self, record: ReplicaRecord) -> None:
        try:
            self._records.delete(*record.key)
        except Exception:
            log.exception("could not delete the record of %s", record.key)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the supervisor has been shut down")

    def _notify(self, replica: Replica) -> None:
        """Tell the caller about every change it can see (a deduplicated view), at once: a replica
        turning ready or unready changes the routes."""
        view = replica.view(self._tuning.backoff)
        if self._last_views.get(replica.record.key) == view:
            return
        self._last_views[replica.record.key] = view
        if self._on_change is not None:
            try:
                self._on_change(view)
            except Exception:
                log.exception("change hook failed for %s", replica.record.key)


def _rotate_all(paths: list[Path], max_bytes: int) -> None:
    for path in paths:
        logs.rotate_if_large(path, max_bytes)
