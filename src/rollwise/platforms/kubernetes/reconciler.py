"""One reconcile of one Rollout: read it and what it owns from the API server, make ONE engine
call, carry the plan out, and write the status only when it changed.

Order of the writes, for zero downtime: ReplicaSets that grow (or are new) first; then Services
and the router (they send traffic only to revisions whose pods are all ready); then ReplicaSets
that shrink, so that a revision losing its traffic is out of the routes before its pods go; then
revisions outside the history are deleted. A router that fails or reads back other routes than
the plan's pauses the rollout (a Warning event and a condition say why): the status then comes
from the same engine call with a `hold` command (pause reason RouterFailed), so that nothing
advances past routes that are not in force."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.types import PatchType
from pydantic import ValidationError

from rollwise.analysis.timestamps import utc_now
from rollwise.engine import Command, Observed, Plan, reconcile
from rollwise.engine.clock import stamp
from rollwise.engine.work import ROUTER_PAUSE, USER_PAUSE
from rollwise.platforms import transitions
from rollwise.platforms.kubernetes import flagsets, services, workloads
from rollwise.platforms.kubernetes.analysis import AnalysisRunner
from rollwise.platforms.kubernetes.commands import CommandError, PendingCommand, pending
from rollwise.platforms.kubernetes.events import EventRecorder, EventType
from rollwise.platforms.kubernetes.names import COMMAND_ANNOTATION, FIELD_MANAGER, Rollout, replicaset_name
from rollwise.platforms.kubernetes.routers.base import Router, RouterError, verify_routes
from rollwise.spec.rollout import Rollout as RolloutModel
from rollwise.spec.status import Condition, RolloutStatus

log = logging.getLogger("rollwise.kubernetes.reconcile")

Key = tuple[str, str]
ROUTER_CONDITION = "TrafficRouted"
KEPT_VERSIONS = 4  # own write versions remembered per object


class RouterFactory(Protocol):
    def __call__(self, rollout: RolloutModel, client: AsyncClient, field_manager: str) -> Router | None: ...


def default_router_factory() -> RouterFactory | None:
    """`routers.router_for`, once the routers package provides it; without it the controller runs
    without a router (weights follow replica counts, as a plain Service does)."""
    try:
        module = importlib.import_module("rollwise.platforms.kubernetes.routers")
    except ImportError:
        return None
    factory = getattr(module, "router_for", None)
    return factory if callable(factory) else None


@dataclass
class Result:
    """What the worker needs after a reconcile: when to look again (None: only on events)."""

    requeue_after: float | None
    plan: Plan | None = None
    wrote_status: bool = False
    problems: list[str] = field(default_factory=list)
    gone: bool = False  # the Rollout no longer exists: its worker can go


class Stale(Exception):
    """An object changed since this reconcile read it (a write conditional on its resourceVersion
    was refused): plan again on what is there now."""


class Reconciler:
    def __init__(
        self,
        client: AsyncClient,
        events: EventRecorder,
        runner: AnalysisRunner,
        *,
        clock: Callable[[], datetime] = utc_now,
        router_factory: RouterFactory | None = None,
        retry_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.events = events
        self.runner = runner
        self.clock = clock
        self.router_factory = router_factory
        self.retry_seconds = retry_seconds
        # What each rollout reads besides itself ("ConfigMap/x", "Deployment/y"): a change to one
        # of them wakes the rollout.
        self.references: dict[Key, set[str]] = {}
        self._last_error: dict[Key, str] = {}
        # The resourceVersions the controller's last writes of each object returned ("Rollout/x",
        # "ReplicaSet/y"), per Rollout. Each of those writes was conditional on the version its
        # reconcile read (or created the object), so the object at that version is what the
        # reconcile already planned on plus its own change: its watch event need not wake the
        # Rollout again. Anyone else's write makes a new version, which does. A few per object:
        # one reconcile can write one object twice (a Rollout's status, then its annotation).
        self.written: dict[Key, dict[str, tuple[str, ...]]] = {}

    def own_write(self, key: Key, ref: str, version: str | None) -> bool:
        """Whether `ref` at `version` is exactly what one of this controller's writes left."""
        return version is not None and version in self.written.get(key, {}).get(ref, ())

    def _remember(self, key: Key, ref: str, stored: Any) -> str | None:
        """Note the version a write returned; returns it."""
        meta = getattr(stored, "metadata", None)
        version = getattr(meta, "resourceVersion", None) if meta is not None else None
        if version is None:
            return None
        versions = self.written.setdefault(key, {})
        versions[ref] = (*versions.get(ref, ())[-(KEPT_VERSIONS - 1) :], str(version))
        return str(version)

    async def reconcile(self, namespace: str, name: str) -> Result:
        try:
            return await self._reconcile(namespace, name)
        except Stale:
            return Result(requeue_after=0.0)

    async def _reconcile(self, namespace: str, name: str) -> Result:
        key = (namespace, name)
        try:
            obj: dict[str, Any] = (await self.client.get(Rollout, name, namespace=namespace)).to_dict()  # type: ignore[no-untyped-call]
        except ApiError as exc:
            if exc.status.code == 404:
                self.references.pop(key, None)
                return Result(requeue_after=None, gone=True)
            raise
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return Result(requeue_after=None)  # owner references take the ReplicaSets with it
        uid = str(meta.get("uid") or "")
        try:
            rollout = RolloutModel.model_validate(obj)
        except ValidationError as exc:
            first = str(exc).splitlines()
            await self._error(key, uid, "InvalidSpec", " ".join(first[:3]))
            return Result(requeue_after=None)
        old_status = rollout.status

        # --- inputs -------------------------------------------------------------------------
        version = meta.get("resourceVersion")  # as this reconcile's own writes leave it
        command: PendingCommand | None = None
        annotations = meta.get("annotations") or {}
        try:
            command = pending(annotations)
        except CommandError as exc:
            await self._event(key, uid, "Warning", "InvalidCommand", str(exc))
            version = await self._drop_command(key, annotations.get(COMMAND_ANNOTATION), version)
        handled = old_status.handled_command if old_status is not None else None
        commands: list[Command] = []
        if command is not None and command.id == handled:
            version = await self._drop_command(key, annotations.get(COMMAND_ANNOTATION), version)
            command = None
        if command is not None:
            commands.append(command.command)
        try:
            workload = await workloads.read_workload(self.client, rollout)
        except workloads.WorkloadError as exc:
            await self._error(key, uid, "WorkloadNotFound", str(exc))
            ref = rollout.spec.workload_ref
            # The Deployment's creation wakes the rollout (operator.py watches Deployments).
            self.references[key] = {f"Deployment/{ref.name}"} if ref is not None else set()
            if rollout.spec.feature_flags is not None:  # an invalid FlagSet, once fixed, wakes it
                self.references[key].add(flagsets.reference(rollout.spec.feature_flags.flag_set))
            return Result(requeue_after=None, problems=[str(exc)])
        self.references[key] = set(workload.config_hashes)
        revisions = await workloads.list_revisions(self.client, namespace, name, uid)
        seen = workloads.observed(revisions, workload.config_hashes)
        now = self.clock()
        verdicts = self.runner.verdicts(key)
        plan = reconcile(rollout, seen, now, verdicts, commands)

        # --- carrying it out ----------------------------------------------------------------
        problems: list[str] = []
        await self._grow(rollout, uid, plan, revisions, workload.template, problems)
        routed = await services.converge(
            self.client, namespace, services.targets(rollout, plan), seen, services.roles(plan)
        )
        problems += routed.problems
        for problem in routed.problems:
            await self._error(key, uid, "ServiceNotFound", problem)
        router_problem = await self._route(rollout, plan, routed, seen)
        if router_problem is not None:
            await self._error(key, uid, "RouterFailed", router_problem)
            if not _held(old_status):
                # The same engine call, told to hold: nothing advances past routes not in force.
                plan = reconcile(rollout, seen, now, verdicts, [*commands, Command("hold")])
        else:
            self._last_error.pop(key, None)
            await self._shrink(namespace, name, plan, revisions)
        await self._scale_down_source(rollout, plan, workload.deployment, seen)
        self.runner.apply(key, plan)

        # --- status -------------------------------------------------------------------------
        status = _status(plan, command, handled, problems, router_problem, routed.waiting, old_status, now)
        status = self.runner.keep_evidence(key, old_status, status)  # a dynamic canary's evidence
        new_doc = _dump(status)
        old_doc = _dump(old_status) if old_status is not None else None
        wrote = False
        if new_doc != old_doc:
            try:
                stored = await self._write_status(namespace, name, version, obj.get("status") or {}, new_doc)
            except ApiError as exc:
                if exc.status.code in (404, 409):
                    # Changed meanwhile (or gone): plan again on what is there now. A command
                    # not yet recorded as handled is still in its annotation.
                    return Result(requeue_after=0.0, plan=plan, problems=problems)
                raise
            wrote = True
            version = self._remember(key, f"Rollout/{name}", stored) or version
            for kind, reason, message in transitions.changes(rollout, old_status, status):
                await self._event(key, uid, kind, reason, message)
        for service, revision in routed.switched:
            await self._event(key, uid, "Normal", "ServiceSelected", f"Service {service} selects revision {revision}")
        if command is not None:
            await self._drop_command(key, annotations.get(COMMAND_ANNOTATION), version)
        delays = [d for d in (plan.requeue_after,) if d is not None]
        if problems or router_problem is not None:
            delays.append(self.retry_seconds)
        return Result(
            requeue_after=max(0.0, min(delays)) if delays else None, plan=plan, wrote_status=wrote, problems=problems
        )

    # --- ReplicaSets --------------------------------------------------------------------------

    async def _grow(
        self,
        rollout: RolloutModel,
        uid: str,
        plan: Plan,
        revisions: dict[str, workloads.RevisionSet],
        template: dict[str, Any],
        problems: list[str],
    ) -> None:
        namespace = rollout.metadata.namespace or "default"
        for revision, count in plan.replicas.items():
            existing = revisions.get(revision)
            if existing is None:
                if revision != plan.revision:
                    if count > 0:
                        problems.append(
                            f"revision {revision} has no ReplicaSet left to scale up (its template is gone)"
                        )
                    continue
                manifest = workloads.replicaset_manifest(rollout, uid, revision, template, count)
                replicaset = cast(ReplicaSet, ReplicaSet.from_dict(manifest))
                stored = await self.client.apply(replicaset, field_manager=FIELD_MANAGER, force=True)
                self._remember((namespace, rollout.metadata.name), f"ReplicaSet/{manifest['metadata']['name']}", stored)
            elif count > existing.replicas:
                await self._scale(namespace, rollout.metadata.name, existing, count)

    async def _shrink(self, namespace: str, name: str, plan: Plan, revisions: dict[str, workloads.RevisionSet]) -> None:
        retained = set(plan.retained_revisions)
        for revision, rs in revisions.items():
            count = plan.replicas.get(revision, 0)
            if count < rs.replicas:
                await self._scale(namespace, name, rs, count)
            elif count == 0 and rs.replicas == 0 and rs.status_replicas == 0 and revision not in retained:
                try:
                    await self.client.delete(ReplicaSet, replicaset_name(name, revision), namespace=namespace)
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise

    async def _scale(self, namespace: str, rollout: str, rs: workloads.RevisionSet, replicas: int) -> None:
        # Conditional on the version read: a change made meanwhile (its pods' readiness) is planned
        # on first, and the version this write returns is then ours alone (see `written`).
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if rs.resource_version is not None:
            body["metadata"] = {"resourceVersion": rs.resource_version}
        try:
            stored = await self.client.patch(
                ReplicaSet,
                rs.name,
                body,
                namespace=namespace,
                patch_type=PatchType.MERGE,
                field_manager=FIELD_MANAGER,
            )
        except ApiError as exc:
            if exc.status.code == 409:
                raise Stale(f"ReplicaSet {namespace}/{rs.name}") from None
            raise
        self._remember((namespace, rollout), f"ReplicaSet/{rs.name}", stored)

    async def _scale_down_source(
        self, rollout: RolloutModel, plan: Plan, deployment: dict[str, Any] | None, seen: Observed
    ) -> None:
        """workloadRef.scaleDown: the Deployment the template comes from gives way to the Rollout
        (`onsuccess`: once the Rollout is healthy; `progressively`: by as many replicas as the
        Rollout has available)."""
        ref = rollout.spec.workload_ref
        if ref is None or deployment is None or ref.scale_down == "never":
            return
        have = int((deployment.get("spec") or {}).get("replicas", 1))
        if ref.scale_down == "onsuccess":
            want = 0 if plan.status.phase == "Healthy" else have
        else:
            available = sum(o.available for o in seen.revisions.values())
            want = max(0, min(have, rollout.spec.replicas - available))
        if want < have:
            await self.client.patch(
                Deployment,
                ref.name,
                {"spec": {"replicas": want}},
                namespace=rollout.metadata.namespace or "default",
                patch_type=PatchType.MERGE,
                field_manager=FIELD_MANAGER,
            )

    # --- the router -----------------------------------------------------------------------------

    async def _route(
        self, rollout: RolloutModel, plan: Plan, routed: services.ServiceResult, seen: Observed
    ) -> str | None:
        """Apply the route table, read it back and compare; the problem in one line, or None."""
        if self.router_factory is None:
            return None
        try:
            router = self.router_factory(rollout, self.client, FIELD_MANAGER)
        except RouterError as exc:
            return str(exc)
        if router is None:
            return None
        backends = routed.backends
        wanted = plan.routes.routed() | {m.revision for m in plan.routes.mirrors}
        missing = sorted(r for r in wanted if r not in backends.services and r not in backends.roles)

        if missing:
            # Only while a Service waits for its revision's pods: the route follows the selector.
            routed.waiting.append(f"routes wait for a Service selecting {', '.join(missing)}")
            return None
        try:
            await router.apply(plan.routes, backends)
            # The server's answer to the write is the read-back (admission and schema pruning
            # included); a router without one reads again.
            observed = router.applied(backends)
            if observed is None:
                observed = await router.observe(backends)
        except RouterError as exc:
            return f"{router.kind}: {exc}"
        except ApiError as exc:
            return f"{router.kind}: {exc.status.message or exc}"
        differences = verify_routes(plan.routes, backends, observed)
        if differences:
            return f"{router.kind}: " + "; ".join(differences)
        return None

    # --- writes and events ----------------------------------------------------------------------

    async def _write_status(
        self, namespace: str, name: str, version: str | None, stored: dict[str, Any], doc: dict[str, Any]
    ) -> Any:
        # A JSON merge patch of the difference (removed fields as nulls) on the status
        # subresource; the resourceVersion read makes a status computed from a stale read a 409.
        body = {"metadata": {"resourceVersion": version}, "status": merge_diff(stored, doc)}
        return await self.client.patch(
            Rollout.Status,
            name,
            body,
            namespace=namespace,
            patch_type=PatchType.MERGE,
            field_manager=FIELD_MANAGER,
        )

    async def _drop_command(self, key: Key, raw: str | None, version: str | None) -> str | None:
        """Remove the command annotation as read; returns the Rollout's version after."""
        if raw is None:
            return version
        namespace, name = key
        path = "/metadata/annotations/" + COMMAND_ANNOTATION.replace("~", "~0").replace("/", "~1")
        # Only the annotation read: a command written meanwhile stays for the next reconcile. On
        # the version this reconcile knows, too, so that the version written is its own alone.
        ops: list[dict[str, Any]] = [{"op": "test", "path": path, "value": raw}, {"op": "remove", "path": path}]
        if version is not None:
            ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": version})
        try:
            stored = await self.client.patch(
                Rollout, name, ops, namespace=namespace, patch_type=PatchType.JSON, field_manager=FIELD_MANAGER
            )
        except ApiError as exc:
            if exc.status.code not in (404, 409, 422):
                raise
            return version
        return self._remember(key, f"Rollout/{name}", stored) or version

    async def _event(self, key: Key, uid: str, kind: EventType, reason: str, message: str) -> None:
        await self.events.record(key[0], key[1], uid or None, kind, reason, message)

    async def _error(self, key: Key, uid: str, reason: str, message: str) -> None:
        """A Warning event, once per distinct error (a reconcile retried every few seconds must not
        flood the namespace)."""
        text = f"{reason}: {message}"
        if self._last_error.get(key) == text:
            return
        self._last_error[key] = text
        await self._event(key, uid, "Warning", reason, message)

    def forget(self, key: Key) -> None:
        self.references.pop(key, None)
        self._last_error.pop(key, None)
        self.written.pop(key, None)


def _status(
    plan: Plan,
    command: PendingCommand | None,
    handled: str | None,
    problems: list[str],
    router_problem: str | None,
    waiting: list[str],
    old: RolloutStatus | None,
    now: datetime,
) -> RolloutStatus:
    status = plan.status
    extra = list(problems)
    if router_problem is not None:
        extra.insert(0, f"paused: the router failed ({router_problem}); fix it, then resume")
    extra += waiting
    update: dict[str, Any] = {"handled_command": command.id if command is not None else handled}
    if extra:
        update["message"] = "; ".join([*([status.message] if status.message else []), *extra])
    if router_problem is not None:
        update["conditions"] = [*(status.conditions or []), _router_condition(router_problem, old, now)]
    return status.model_copy(update=update)


def _router_condition(problem: str, old: RolloutStatus | None, now: datetime) -> Condition:
    before = next((c for c in (old.conditions or []) if c.type == ROUTER_CONDITION), None) if old else None
    since = before.last_transition_time if before is not None and before.status == "False" else stamp(now)
    return Condition(
        type=ROUTER_CONDITION, status="False", reason="RouterFailed", message=problem, last_transition_time=since
    )


def _dump(status: RolloutStatus) -> dict[str, Any]:
    # Through the model both ways, so that defaults the API server filled in compare equal.
    doc = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    normal: dict[str, Any] = json.loads(json.dumps(doc, sort_keys=True))
    return normal


def merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) turning `old` into `new`: removed keys as null, maps
    recursively, anything else (lists included) whole."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_diff(before, value)
            if inner:
                patch[key] = inner
        elif value != before or key not in old:
            patch[key] = value
    return patch


def _held(status: RolloutStatus | None) -> bool:
    """Paused already by a user or by an earlier router failure: nothing can advance anyway."""
    reasons = {p.reason for p in (status.pause_conditions or [])} if status is not None else set()
    return USER_PAUSE in reasons or ROUTER_PAUSE in reasons
