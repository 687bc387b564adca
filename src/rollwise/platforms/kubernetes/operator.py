"""The operator: kopf watches Rollouts and what they own or read (ReplicaSets, ConfigMaps,
Secrets, Deployments, FlagSets) or route through (their Services, VirtualServices,
DestinationRules, HTTPRoutes, Ingresses), and every event wakes the one worker of the Rollout it
concerns. A worker
runs one reconcile at a time (reconciler.py) and sleeps until the next event, the plan's "look
again" time, or a periodic resync (jittered). The watch events of the controller's own writes wake
nothing (Reconciler.written says which versions they left; RouteWrites, for the Services and
router objects). Leader election (lease.py) decides
which replica runs it.

kopf only delivers events here: there are no kopf change handlers, so kopf writes nothing to a
Rollout. Its progress bookkeeping is nevertheless pointed at annotations (AnnotationsProgressStorage),
since the Rollout's status schema is closed and would prune kopf's default `status.kopf`; its diff
base, which only change handlers read, is not kept at all (NoDiffBase)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import kopf
from lightkube import AsyncClient
from lightkube.config.kubeconfig import SingleConfig

from rollwise.analysis.timestamps import utc_now
from rollwise.platforms.kubernetes.analysis import AnalysisRunner
from rollwise.platforms.kubernetes.connection import kopf_connection
from rollwise.platforms.kubernetes.events import EventRecorder, EventType
from rollwise.platforms.kubernetes.flagsets import FLAGSET_LABEL, FlagSetWriter
from rollwise.platforms.kubernetes.flagsets import reference as flagset_reference
from rollwise.platforms.kubernetes.gate import BACKGROUND, URGENT, Gate, Ticket
from rollwise.platforms.kubernetes.histogram import Histogram
from rollwise.platforms.kubernetes.lease import LeaderElector
from rollwise.platforms.kubernetes.names import FIELD_MANAGER, GROUP, ROLLOUT_LABEL, VERSION
from rollwise.platforms.kubernetes.reconciler import Reconciler, RouterFactory, default_router_factory
from rollwise.spec.analysis import Verdict

log = logging.getLogger("rollwise.kubernetes.operator")

RESYNC_JITTER = 0.1

Key = tuple[str, str]
# An object a Rollout routes through, by (namespace, kind, name): a change to it by anyone else
# wakes the Rollout, whose reconcile writes it back if it no longer routes as planned.
Routed = tuple[str, str, str]

# The watched kinds a Rollout routes through: (kopf group, version, plural) by kind. The Istio and
# Gateway API ones are CRDs a cluster may lack: kopf only watches what the API server lists at
# start (scanning is off), so those watches are simply not made there.
ROUTED_KINDS: dict[str, tuple[str, str, str]] = {
    "Service": ("", "v1", "services"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices"),
    "DestinationRule": ("networking.istio.io", "v1", "destinationrules"),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "Ingress": ("networking.k8s.io", "v1", "ingresses"),
}
KEPT_ROUTE_VERSIONS = 4

# The Rollout whose reconcile is running in this task: its writes to routed objects are its own.
_reconciling: contextvars.ContextVar[Key | None] = contextvars.ContextVar("rollwise_reconciling", default=None)


@dataclass
class Settings:
    namespaces: Collection[str] = ()  # empty: every namespace
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    lease_namespace: str = "default"
    lease_name: str = "rollwise-controller"
    lease_seconds: int = 15
    renew_seconds: float = 5.0
    # Events drive every reconcile; the resync only catches what a missed event would have shown.
    # Each Rollout's resync is spread by ±RESYNC_JITTER so that thousands read at start do not
    # come back together. Timed steps (pauses, analysis intervals) wake at their own time.
    resync_seconds: float = 600.0
    retry_seconds: float = 2.0
    # Reconciles in flight at once. Each makes its API calls one after another, so this is also the
    # bound on requests in flight: below the HTTP client's 20 kept-alive connections, no request
    # waits in its pool (whose queue is scanned on every request: thousands of queued reconciles
    # made that scan the controller's largest CPU cost) and none opens a new connection.
    concurrent_reconciles: int = 16
    # Of those, how many may be periodic resyncs (gate.py): 4 do ~20 reconciles/s here, above the
    # 10,000 / 600 s ≈ 17/s that 10,000 Rollouts ask for, and leave 12 to the changes.
    background_reconciles: int = 4
    clock: Callable[[], datetime] = utc_now
    router_factory: RouterFactory | None = field(default_factory=default_router_factory)
    prometheus_url: str | None = None  # the router's metrics, for traffic figures (analysis.py)


@dataclass
class Probe:
    """What the health and metrics endpoints report about a running replica."""

    leading: bool = False
    controller: Controller | None = None
    started_at: float = field(default_factory=time.monotonic)


class LeadershipLost(Exception):
    """Another replica holds the lease now; this one must stop acting (and its process exit)."""


class Worker:
    def __init__(self, controller: Controller, key: Key) -> None:
        self.controller = controller
        self.key = key
        self.wakeup = asyncio.Event()
        self.lock = asyncio.Lock()
        self.next_at = 0.0
        self.resyncing = False  # the next timed look is the periodic resync
        self.ticket: Ticket | None = None
        # Events that came while a reconcile ran, checked once it ends: its own writes are known
        # by then (the watch can deliver one before the write's response has been read).
        self.unsorted: list[tuple[str, str | None]] = []
        self.task = asyncio.create_task(self._loop(), name=f"rollwise-worker-{key[0]}-{key[1]}")

    def notice(self, ref: str, version: str | None) -> None:
        """An event about `ref` at `version`: a wake unless it is the controller's own write."""
        if self.key in self.controller.running:
            self.unsorted.append((ref, version))
        elif self.controller.own_write(self.key, ref, version):
            self.controller.own_events += 1
        else:
            self.wake()

    def _sort(self) -> None:
        events, self.unsorted = self.unsorted, []
        own = sum(1 for ref, version in events if self.controller.own_write(self.key, ref, version))
        self.controller.own_events += own
        if own < len(events):
            self.wakeup.set()

    def wake(self) -> None:
        self.wakeup.set()
        if self.ticket is not None:
            self.ticket.hurry()  # a resync waiting for its turn now carries an event

    async def stop(self) -> None:
        """After the reconcile in progress, if any: one cut short could leave a ReplicaSet scaled
        and the status not yet saying why."""
        if self.ticket is not None and self.ticket.future is not None:
            # Still waiting for its turn at the gate: nothing started, nothing to finish (thousands
            # of queued resyncs must not hold a shutdown up).
            self.task.cancel()
        else:
            async with self.lock:
                self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _loop(self) -> None:
        while True:
            delay = self.next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wakeup.wait()
            woken = self.wakeup.is_set()
            background = self.resyncing and not woken
            cause = "event" if woken else "resync" if self.resyncing else "timed"
            self.controller.causes[cause] = self.controller.causes.get(cause, 0) + 1
            self.wakeup.clear()
            async with self.lock:
                self.ticket = self.controller.gate.ticket(BACKGROUND if background else URGENT)
                try:
                    wait, self.resyncing = await self.controller.reconcile(self.key, self.ticket)
                finally:
                    self.ticket = None
                    self._sort()
                if wait is None and not self.wakeup.is_set():
                    # Gone, and no event since (a Rollout created again under the same name would
                    # have set wakeup): no await between this check and leaving, so none is lost.
                    if self.controller.workers.get(self.key) is self:
                        del self.controller.workers[self.key]
                    return
                self.next_at = time.monotonic() + (wait or 0.0)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf builds every event's diff base (a deep copy of the whole object, pruned) for change
    handlers to compare; with event handlers only nobody reads it, and with thousands of objects
    building it was a visible share of the controller's CPU."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class RouteWrites:
    """The client the reconciler writes with, noting the resourceVersion each write to a routed
    object (a Service's selector, a router's object) returned, under the Rollout whose reconcile
    made it: the watch event of that version is its own write and wakes nothing. The reconciler
    and the routers call lightkube's methods on it as on the client itself."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.written: dict[Key, dict[str, tuple[str, ...]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def replace(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(await self._client.replace(*args, **kwargs))

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(await self._client.patch(*args, **kwargs))

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(await self._client.apply(*args, **kwargs))

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return self._note(await self._client.create(*args, **kwargs))

    def _note(self, stored: Any) -> Any:
        key = _reconciling.get()
        info = getattr(type(stored), "_api_info", None)
        kind = info.resource.kind if info is not None else None
        meta = getattr(stored, "metadata", None)
        if key is not None and kind in ROUTED_KINDS and meta is not None and meta.resourceVersion is not None:
            ref = route_ref(meta.namespace or "", kind, meta.name or "")
            versions = self.written.setdefault(key, {})
            versions[ref] = (*versions.get(ref, ())[-(KEPT_ROUTE_VERSIONS - 1) :], str(meta.resourceVersion))
        return stored

    def own_write(self, key: Key, ref: str, version: str | None) -> bool:
        return version is not None and version in self.written.get(key, {}).get(ref, ())


class Controller:
    """The workers, the analysis runner and the kopf handlers that wake them."""

    def __init__(self, client: AsyncClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.events = EventRecorder(client, settings.identity)
        self.runner = AnalysisRunner(
            client, self._verdict, clock=settings.clock, prometheus_url=settings.prometheus_url
        )
        self.route_writes = RouteWrites(client)
        # Which Rollouts route through each object, from their specs as last seen: keys only, in
        # tuples (nearly always of one), which take a fifth of a set's memory.
        self.routed: dict[Routed, tuple[Key, ...]] = {}
        self.routes_of: dict[Key, tuple[Routed, ...]] = {}
        self.reconciler = Reconciler(
            cast(AsyncClient, self.route_writes),
            self.events,
            self.runner,
            clock=settings.clock,
            router_factory=settings.router_factory,
            retry_seconds=settings.retry_seconds,
        )
        self.flagsets = FlagSetWriter(client, self._flagset_warning, settings.retry_seconds)
        self.workers: dict[Key, Worker] = {}
        self.reconciles = 0  # started
        self.completed = 0  # finished, successfully or not
        self.failures = 0
        self.own_events = 0  # events of the controller's own writes, which woke nothing
        self.running: set[Key] = set()  # reconciles past the gate
        # Why each reconcile ran: an event (or a first look), the resync, or a timed step or retry.
        self.causes: dict[str, int] = {}
        self.durations = Histogram()  # seconds per reconcile, failed ones included
        self.gate = Gate(settings.concurrent_reconciles, settings.background_reconciles)
        self.closed = False

    async def reconcile(self, key: Key, ticket: Ticket | None = None) -> tuple[float | None, bool]:
        """One reconcile; the seconds until the worker must look again (None: the Rollout is gone,
        the worker ends), and whether that look is the periodic resync. The duration histogram
        counts from the gate on (not the wait for it)."""
        async with self.gate.hold(ticket or self.gate.ticket()):
            return await self._reconcile(key)

    def resync_delay(self) -> float:
        spread = self.settings.resync_seconds * RESYNC_JITTER
        return self.settings.resync_seconds + random.uniform(-spread, spread)

    async def _reconcile(self, key: Key) -> tuple[float | None, bool]:
        self.reconciles += 1
        began = time.perf_counter()
        self.running.add(key)
        token = _reconciling.set(key)
        try:
            result = await self.reconciler.reconcile(*key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.durations.observe(time.perf_counter() - began)
            self.completed += 1
            log.exception("reconciling %s/%s failed", *key)
            self.failures += 1
            with contextlib.suppress(Exception):
                await self.events.record(
                    key[0], key[1], None, "Warning", "ReconcileFailed", f"{type(exc).__name__}: {exc}"
                )
            return self.settings.retry_seconds, False
        finally:
            _reconciling.reset(token)
            self.running.discard(key)
        self.durations.observe(time.perf_counter() - began)
        self.completed += 1
        if result.gone:
            # Deleted, and its DELETED event missed (or not yet seen): the worker ends itself.
            await self.runner.forget(key)
            self.reconciler.forget(key)
            self._unroute(key)
            return None, False
        resync = self.resync_delay()
        if result.requeue_after is not None and result.requeue_after < resync:
            return result.requeue_after, False
        return resync, True

    def wake(self, key: Key, ref: str | None = None, version: str | None = None) -> None:
        """Wake the Rollout's worker (starting one if needed); with `ref` and `version`, only when
        that object at that version is not what the controller's own last write of it left."""
        if self.closed:
            return  # stopping: kopf still delivers events until it stops too
        worker = self.workers.get(key)
        if worker is None:
            worker = self.workers[key] = Worker(self, key)
        if ref is None:
            worker.wake()
        else:
            worker.notice(ref, version)

    async def forget(self, key: Key) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            await worker.stop()
        await self.runner.forget(key)
        self.reconciler.forget(key)
        self._unroute(key)

    def own_write(self, key: Key, ref: str, version: str | None) -> bool:
        return self.reconciler.own_write(key, ref, version) or self.route_writes.own_write(key, ref, version)

    def route(self, key: Key, obj: Mapping[str, Any]) -> None:
        """Index the objects the Rollout `obj` routes through, as its spec names them now."""
        routes = tuple(sorted(routes_of(key[0], obj)))
        old = self.routes_of.get(key, ())
        if routes == old:
            return
        for r in old:
            if r not in routes:
                keys = tuple(k for k in self.routed.get(r, ()) if k != key)
                if keys:
                    self.routed[r] = keys
                else:
                    self.routed.pop(r, None)
        for r in routes:
            if r not in old:
                self.routed[r] = (*self.routed.get(r, ()), key)
        if routes:
            self.routes_of[key] = routes
        else:
            self.routes_of.pop(key, None)

    def _unroute(self, key: Key) -> None:
        self.route(key, {})
        self.route_writes.written.pop(key, None)

    async def shutdown(self) -> None:
        self.closed = True
        for key in list(self.workers):
            worker = self.workers.pop(key)
            await worker.stop()
        await self.runner.shutdown()
        await self.flagsets.shutdown()

    async def _verdict(self, key: Key, run: str, phase: Verdict, message: str | None) -> None:
        if phase in ("Successful", "Failed", "Error", "Inconclusive"):
            kind: EventType = "Normal" if phase == "Successful" else "Warning"
            await self.events.record(key[0], key[1], None, kind, f"Analysis{phase}", f"run {run}: {message or ''}")
        self.wake(key)

    async def _flagset_warning(self, namespace: str, name: str, reason: str, message: str) -> None:
        await self.events.record(namespace, name, None, "Warning", reason, message, involved="FlagSet")

    def referencing(self, namespace: str, ref: str) -> list[Key]:
        return [k for k, refs in self.reconciler.references.items() if k[0] == namespace and ref in refs]

    # --- kopf ---------------------------------------------------------------------------------

    def registry(self, config: SingleConfig) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        connection = kopf_connection(config)

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return connection

        @kopf.on.startup(registry=registry)
        def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.rollwise.dev")
            settings.persistence.diffbase_storage = NoDiffBase()
            settings.posting.enabled = False  # Rollwise records its own events
            # The resources and namespaces are known at start: no list/watch of every CRD and
            # Namespace in the cluster (RBAC the controller would otherwise need).
            settings.scanning.disabled = True
            settings.networking.connect_timeout = 10
            settings.watching.server_timeout = 300

        @kopf.on.event(GROUP, VERSION, "rollouts", registry=registry)
        async def rollout_event(event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any) -> None:
            if namespace is None or name is None:
                return
            key = (namespace, name)
            if event.get("type") == "DELETED":
                await self.forget(key)
            else:
                if not self.closed:
                    self.route(key, event.get("object") or {})
                self.wake(key, f"Rollout/{name}", _version(event))

        @kopf.on.event("apps", "v1", "replicasets", labels={ROLLOUT_LABEL: kopf.PRESENT}, registry=registry)
        def replicaset_event(
            event: kopf.RawEvent, namespace: str | None, name: str | None, labels: kopf.Labels, **_: Any
        ) -> None:
            key = (namespace or "", labels[ROLLOUT_LABEL])
            if namespace is None or key not in self.workers:
                return
            if event.get("type") == "DELETED":
                self.wake(key)
            else:
                self.wake(key, f"ReplicaSet/{name}", _version(event))

        def referenced(kind: str) -> Callable[..., None]:
            def handler(namespace: str | None, name: str | None, **_: Any) -> None:
                if namespace is not None and name is not None:
                    for key in self.referencing(namespace, f"{kind}/{name}"):
                        self.wake(key)

            return handler

        kopf.on.event("", "v1", "configmaps", registry=registry)(referenced("ConfigMap"))
        kopf.on.event("", "v1", "secrets", registry=registry)(referenced("Secret"))
        kopf.on.event("apps", "v1", "deployments", registry=registry)(referenced("Deployment"))

        def routed(kind: str) -> Callable[..., None]:
            def handler(event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any) -> None:
                if namespace is None or name is None:
                    return
                keys = self.routed.get((namespace, kind, name))
                if not keys:
                    return
                # A deletion is never the controller's own write of that version: it always wakes.
                version = None if event.get("type") == "DELETED" else _version(event)
                ref = route_ref(namespace, kind, name)
                for key in keys:
                    self.wake(key, ref, version)

            return handler

        for kind, (group, version, plural) in ROUTED_KINDS.items():
            kopf.on.event(group, version, plural, registry=registry)(routed(kind))

        @kopf.on.event(GROUP, VERSION, "flagsets", registry=registry)
        async def flagset_event(event: kopf.RawEvent, namespace: str | None, name: str | None, **_: Any) -> None:
            # Its ConfigMap first (running pods see the change in place), then the rollouts
            # reading it: its `env` values are part of their revisions.
            if namespace is None or name is None or self.closed:
                return
            if event.get("type") == "DELETED":
                self.flagsets.forget(namespace, name)
            else:
                await self.flagsets.write(event["object"])
            for key in self.referencing(namespace, flagset_reference(name)):
                self.wake(key)

        @kopf.on.event("", "v1", "configmaps", labels={FLAGSET_LABEL: kopf.PRESENT}, registry=registry)
        async def flags_configmap_event(
            event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, **_: Any
        ) -> None:
            # A FlagSet's ConfigMap edited or deleted by hand is written again from the FlagSet.
            if namespace is None or self.closed:
                return
            obj: Mapping[str, Any] = event.get("object") or {}
            data: Mapping[str, Any] | None = None if event.get("type") == "DELETED" else (obj.get("data") or {})
            await self.flagsets.restore(namespace, labels[FLAGSET_LABEL], data)

        return registry


async def run(
    config: SingleConfig,
    settings: Settings,
    stop: asyncio.Event,
    *,
    started: asyncio.Event | None = None,
    controller_out: list[Controller] | None = None,
    probe: Probe | None = None,
) -> None:
    """Run one controller replica until `stop` is set: wait for the lease, then operate. Raises
    LeadershipLost if the lease is lost (the process should exit; its Pod restarts as a standby)."""
    async with AsyncClient(config, field_manager=FIELD_MANAGER, trust_env=False) as client:
        elector = LeaderElector(
            client,
            settings.lease_namespace,
            settings.lease_name,
            settings.identity,
            lease_seconds=settings.lease_seconds,
            renew_seconds=settings.renew_seconds,
            retry_seconds=settings.retry_seconds,
        )
        if not await _first(elector.acquire(), stop):
            return
        controller = Controller(client, settings)
        if controller_out is not None:
            controller_out.append(controller)
        if probe is not None:
            probe.leading, probe.controller = True, controller
        kopf_stop, kopf_ready = asyncio.Event(), asyncio.Event()
        namespaces = list(settings.namespaces)
        operator = asyncio.create_task(
            kopf.operator(
                registry=controller.registry(config),
                standalone=True,  # leader election is the Lease above, not kopf's peering CRD
                clusterwide=not namespaces,
                namespaces=namespaces,
                stop_flag=kopf_stop,
                ready_flag=kopf_ready,
            ),
            name="rollwise-kopf",
        )
        try:
            await _first(kopf_ready.wait(), stop)
            if started is not None:
                started.set()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(elector.lost.wait())]
            await asyncio.wait([*waits, operator], return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        finally:
            await controller.shutdown()
            kopf_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await operator
            await elector.release()
            if probe is not None:
                probe.leading = False
        if elector.lost.is_set():
            raise LeadershipLost(f"lease {settings.lease_namespace}/{settings.lease_name} was lost")


def route_ref(namespace: str, kind: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def routes_of(namespace: str, obj: Mapping[str, Any]) -> frozenset[Routed]:
    """The Services and router objects a Rollout (as stored, unvalidated) names: those its
    reconcile switches or writes. An invalid spec names what it can; its reconcile says what is
    wrong."""
    strategy = _dict(_dict(obj.get("spec")).get("strategy"))
    out: set[Routed] = set()

    def add(kind: str, name: Any, ns: Any = None) -> None:
        if isinstance(name, str) and name:
            out.add((ns if isinstance(ns, str) and ns else namespace, kind, name))

    blue_green = _dict(strategy.get("blueGreen"))
    add("Service", blue_green.get("activeService"))
    add("Service", blue_green.get("previewService"))
    for holder in (_dict(strategy.get(k)) for k in ("canary", "shadow", "abTest")):
        add("Service", holder.get("stableService"))
        add("Service", holder.get("canaryService"))
        routing = _dict(holder.get("trafficRouting"))
        istio = _dict(routing.get("istio"))
        add("VirtualService", _dict(istio.get("virtualService")).get("name"))
        add("DestinationRule", _dict(istio.get("destinationRule")).get("name"))
        gateway = _dict(routing.get("gatewayAPI"))
        add("HTTPRoute", gateway.get("httpRoute"), gateway.get("namespace"))
        ingress = _dict(routing.get("nginx")).get("ingress")
        if isinstance(ingress, str) and ingress:
            add("Ingress", ingress)
            add("Ingress", f"{ingress}-canary")  # the canary Ingress the router owns
    return frozenset(out)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _version(event: kopf.RawEvent) -> str | None:
    obj: Mapping[str, Any] = event.get("object") or {}
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


async def _first(work: Any, stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first; True when the work finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
