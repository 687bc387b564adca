"""Carry out one rollout's plan: its proxies (started or re-adopted, one per listener) get the
route table, the supervisor gets the replica counts.

Order matters for zero downtime: the routes go first (the engine routes only to revisions with
ready replicas), then the replica counts, so a revision losing its traffic is already out of the
routes when its replicas start draining. The drain hook pushes the routes again without the
draining replica and waits until no request is in flight to it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rollwise.engine import Plan
from rollwise.engine import RouteTable as EngineRoutes
from rollwise.platforms.local.daemon.observe import ready_ports
from rollwise.platforms.local.daemon.proxies import Proxies, ProxyError, ProxyProcess
from rollwise.platforms.local.daemon.routing import translate
from rollwise.platforms.local.store import EventType
from rollwise.platforms.local.supervisor import ReplicaView, Supervisor
from rollwise.spec.rollout import Rollout
from rollwise.spec.strategies.shadow import ShadowCompare
from rollwise.spec.workload import ProcessTemplate

log = logging.getLogger("rollwise.daemon.carry")

TemplateFor = Callable[[str], ProcessTemplate | None]
EventSink = Callable[[str, EventType, str, str], None]


@dataclass(frozen=True)
class RouteIntent:
    """What the last plan asked of the proxies, beyond the ready replicas seen at push time."""

    routes: EngineRoutes
    preview: str | None
    sticky_cookie: str | None
    compare: ShadowCompare | None


class Carrier:
    def __init__(
        self, name: str, supervisor: Supervisor, proxies: Proxies, template_for: TemplateFor, event: EventSink
    ) -> None:
        self.name = name
        self.supervisor = supervisor
        self.proxies = proxies
        self.template_for = template_for
        self.event = event
        self.intent: RouteIntent | None = None
        # What the supervisor was last told per revision (the engine's `desired`).
        self.desired: dict[str, int] = {}
        self.problems: list[str] = []
        self._push = asyncio.Lock()
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._proxy_error: str | None = None

    # --- the plan -----------------------------------------------------------------------------

    async def carry(self, rollout: Rollout, plan: Plan) -> list[str]:
        """Carry out the plan; returns problems worth telling the user (a proxy that cannot listen,
        a revision without a template), which the next reconcile retries."""
        self.problems = []
        self.intent = _intent(rollout, plan)
        await self.ensure_proxies(rollout)
        await self.push()
        views = self.views()
        for revision, count in plan.replicas.items():
            if count == 0 and not views.get(revision):
                self.desired[revision] = 0
                continue
            template = self.template_for(revision)
            if template is None:
                if count == 0:
                    # Pruned from the store, yet replicas are left (a restart mid-stop): stopping
                    # needs no template. It waits for the drains, so it runs beside the reconcile.
                    if revision not in self._stopping:
                        self._stopping[revision] = asyncio.create_task(self._stop(revision))
                    self.desired[revision] = 0
                else:
                    self.problems.append(f"revision {revision} has no recorded process template")
                continue
            await self.supervisor.converge(self.name, revision, template, count)
            self.desired[revision] = count
        for revision in set(self.desired) - set(plan.replicas):
            del self.desired[revision]
        return self.problems

    async def _stop(self, revision: str) -> None:
        try:
            await self.supervisor.stop_revision(self.name, revision)
        finally:
            self._stopping.pop(revision, None)

    async def ensure_proxies(self, rollout: Rollout) -> None:
        listen = rollout.spec.listen
        wanted: dict[str, int | None] = {"main": listen.port if listen else None}
        strategy = rollout.spec.strategy
        if strategy.blue_green is not None or strategy.ab_test is not None or (listen and listen.preview_port):
            wanted["preview"] = listen.preview_port if listen else None
        for listener, port in wanted.items():
            try:
                proc, started = await self.proxies.ensure(self.name, listener, port)
            except ProxyError as exc:
                self.problems.append(str(exc))
                if str(exc) != self._proxy_error:  # retried every few seconds: one event per cause
                    self.event(self.name, "Warning", "ProxyFailed", str(exc))
                self._proxy_error = str(exc)
                continue
            self._proxy_error = None
            if started:
                self.event(
                    self.name,
                    "Normal",
                    "ProxyStarted",
                    f"{listener} listener on 127.0.0.1:{proc.port} (pid {proc.pid})",
                )
        for proc in self.proxies.of(self.name):
            if proc.listener not in wanted:
                await self.proxies.stop(self.name, proc.listener)

    def endpoints(self) -> dict[str, str]:
        return {p.listener: f"http://127.0.0.1:{p.port}" for p in self.proxies.of(self.name)}

    # --- routes -------------------------------------------------------------------------------

    def views(self) -> dict[str, list[ReplicaView]]:
        return {rev: views for (rollout, rev), views in self.supervisor.snapshot().items() if rollout == self.name}

    async def push(self) -> None:
        """Give every proxy of the rollout the table for the last plan and the replicas ready now."""
        intent = self.intent
        if intent is None:
            return
        async with self._push:
            t = translate(
                intent.routes,
                ready_ports(self.views()),
                preview_revision=intent.preview,
                sticky_cookie=intent.sticky_cookie,
                compare=intent.compare,
            )
            for proc in self.proxies.of(self.name):
                table = t.preview if proc.listener == "preview" else t.main
                try:
                    await self.proxies.swap(proc, table)
                except ProxyError as exc:
                    self.problems.append(str(exc))
                    log.warning("%s", exc)

    async def drain(self, view: ReplicaView, timeout: float) -> None:
        """The replica is draining (no longer ready): take it out of the routes, then wait until
        no proxy has a request in flight to it."""
        await self.push()
        if view.port is None:
            return
        label = f"127.0.0.1:{view.port}"
        deadline = time.monotonic() + timeout
        for proc in self.proxies.of(self.name):
            while time.monotonic() < deadline and await self._inflight(proc, label):
                await asyncio.sleep(0.05)

    async def _inflight(self, proc: ProxyProcess, label: str) -> int:
        try:
            stats = await self.proxies.stats(proc)
        except ProxyError:
            return 0  # a proxy that cannot answer has nothing to wait for
        upstream = (stats.get("upstreams") or {}).get(label) or {}
        return int(upstream.get("inflight", 0))


def _intent(rollout: Rollout, plan: Plan) -> RouteIntent:
    strategy = rollout.spec.strategy
    preview = plan.routes.preview
    status = plan.status
    if preview is None and strategy.ab_test is not None and status.current_revision != status.stable_revision:
        preview = status.current_revision  # the candidate, for testers
    sticky = None
    canary = strategy.canary
    if canary is not None and canary.traffic_routing is not None and canary.traffic_routing.local is not None:
        sticky = canary.traffic_routing.local.sticky_cookie
    compare = strategy.shadow.compare if strategy.shadow is not None else None
    return RouteIntent(plan.routes, preview, sticky, compare)
