"""The cluster side of the controller benchmark, in a process of its own: the emulated API server
(bounded history, request log and audit trimmed), the objects of N Rollouts, a readiness driver
standing in for the ReplicaSet controller and kubelet, and the stopwatch for spec-to-route times.

Started by bench.py; speaks JSON lines on stdout:
  {"event": "serving", "url": ...}            objects created, the controller may start
  {"event": "healthy", ...}                     every Rollout Healthy on its first revision
                                                (with --wait-go: the changes start at a "go" line)
  {"event": "done", ...}                        the spec changes measured (or timed out)
and stops when its stdin closes.

Each Rollout `r<i>` in namespace `bench-<i % namespaces>`: 1 replica, a canary strategy with
steps [setWeight 10, pause], Services `r<i>-stable` / `r<i>-canary` and an Istio VirtualService
`r<i>` with one route `primary` (stable 100, canary 0). The spec change is a new image; the
route is "updated" at the commit of the VirtualService write whose canary weight is 10. Both
times are taken here, at the emulator's commits (writes never await, so a commit is the moment
the API server answers), on one clock."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
from kmock._internal import rendering

from rollwise.testing.kubeapi import ApiServer, Store, Write, rollwise_crds, serve, shared_crd_files
from rollwise.testing.kubeapi.registry import Resource
from rollwise.testing.kubeapi.selectors import FieldSelector, LabelSelector
from rollwise.testing.kubeapi.store import Event, Obj, ObjKey

REVISION_LABEL = "rollwise.dev/revision"
MERGE = "application/merge-patch+json"
CANARY_WEIGHT = 10


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def rollout(name: str, namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
            "strategy": {
                "canary": {
                    "stableService": f"{name}-stable",
                    "canaryService": f"{name}-canary",
                    "trafficRouting": {"istio": {"virtualService": {"name": name, "routes": ["primary"]}}},
                    "steps": [{"setWeight": CANARY_WEIGHT}, {"pause": {}}],
                }
            },
        },
    }


def service(name: str, namespace: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def virtual_service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": f"{name}-stable"}, "weight": 100},
                        {"destination": {"host": f"{name}-canary"}, "weight": 0},
                    ],
                }
            ],
        },
    }


class BenchStore(Store):
    """The store, listing one namespace without sorting every object of the kind first (the
    store sorts all keys, then filters: at 10,000 ReplicaSets each list of one Rollout's took
    milliseconds of the emulator's time). Same result, same order."""

    def _selected(
        self, res: Resource, namespace: str | None, labels: LabelSelector, fsel: FieldSelector
    ) -> Iterator[tuple[ObjKey, Obj]]:
        objects = self.objects.get(res.key, {})
        keys = [k for k in objects if k[0] == namespace] if namespace else list(objects)
        for key in sorted(keys):
            obj = objects[key]
            if labels.matches((obj.get("metadata") or {}).get("labels")) and fsel.matches(obj):
                yield key, obj


@attrs.define
class BenchApiServer(ApiServer):
    """The emulator, with kmock's per-request bookkeeping out of the way. kmock keeps every request
    it served and finds the reaction for a new one by scanning that whole log (`request in view`,
    each entry through every filter, with `inspect.signature` per call): left alone, every request
    is slower than the last, and even trimmed the matching costs more than serving. Here resource
    requests go straight to the store's handler (the reaction the emulator registers for them
    anyway; no fault injection in a benchmark), and the log and audit are cleared as they grow.
    That is the emulator's cost, not the controller's, kept out of the measurement."""

    served: int = 0
    _direct: rendering.Response | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._direct = rendering.Response.guess(self._serve_resource)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            return await super().__call__(raw_request)
        finally:
            self.served += 1
            if len(self._requests) > 16:
                self._requests.clear()
                for payload in self._payloads:
                    payload._requests.clear()
                self.audit.clear()

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        r = request.resource
        if self._direct is not None and r is not None and r.plural is not None and r.version is not None:
            return await self._direct(request)
        return await super()._handle(request)


class Bench:
    def __init__(self, api: ApiServer, count: int, namespaces: int) -> None:
        self.api = api
        self.store = api.store
        self.count = count
        self.keys = [(f"bench-{i % namespaces}", f"r{i}") for i in range(count)]
        self.res = {
            kind: self.store.lookup(group, version, plural)[0]
            for kind, (group, version, plural) in {
                "ns": ("", "v1", "namespaces"),
                "svc": ("", "v1", "services"),
                "rs": ("apps", "v1", "replicasets"),
                "rollout": ("rollwise.dev", "v1alpha1", "rollouts"),
                "vs": ("networking.istio.io", "v1", "virtualservices"),
            }.items()
        }
        self.dirty: set[tuple[str, str]] = set()
        self.wake = asyncio.Event()
        self.healthy: set[tuple[str, str]] = set()
        self.all_healthy = asyncio.Event()
        self.changed_at: dict[tuple[str, str], float] = {}  # spec change committed (perf_counter)
        self.routed: dict[tuple[str, str], float] = {}  # seconds from the change to the route
        self.all_routed = asyncio.Event()
        self.readiness_writes = 0
        self.store.on_commit.append(self.on_commit)

    # --- set-up, straight into the store (no HTTP: the controller is not running yet) -------------

    def populate(self) -> None:
        system = Write(manager="bench")
        for ns in sorted({ns for ns, _ in self.keys}):
            self.store.create(self.res["ns"], "v1", "", {"metadata": {"name": ns}}, system)
        for ns, name in self.keys:
            for role in ("stable", "canary"):
                self.store.create(self.res["svc"], "v1", ns, service(f"{name}-{role}", ns, name), system)
            self.store.create(self.res["vs"], "v1", ns, virtual_service(name, ns), system)
            self.store.create(self.res["rollout"], "v1alpha1", ns, rollout(name, ns, "example/app:1.0"), system)

    # --- what the emulator sees committed ----------------------------------------------------------

    def on_commit(self, event: Event) -> None:
        # Called inside every write: only bookkeeping here, never a write.
        if event.res == self.res["rs"].key:
            if event.type != "DELETED":
                self.dirty.add((event.namespace, event.obj["metadata"]["name"]))
                self.wake.set()
        elif event.res == self.res["rollout"].key:
            key = (event.namespace, event.obj["metadata"]["name"])
            status = event.obj.get("status") or {}
            if status.get("phase") == "Healthy" and not self.all_healthy.is_set():
                self.healthy.add(key)
                if len(self.healthy) == self.count:
                    self.all_healthy.set()
        elif event.res == self.res["vs"].key and event.type == "MODIFIED":
            key = (event.namespace, event.obj["metadata"]["name"])
            began = self.changed_at.get(key)
            if began is not None and key not in self.routed:
                route = (event.obj["spec"].get("http") or [{}])[0].get("route") or []
                weights = {d["destination"]["host"]: d.get("weight", 100) for d in route}
                if weights.get(f"{key[1]}-canary") == CANARY_WEIGHT:
                    self.routed[key] = time.perf_counter() - began
                    if len(self.routed) == len(self.changed_at) and self.changing_done:
                        self.all_routed.set()

    changing_done = False

    # --- the ReplicaSet controller and kubelet in miniature ----------------------------------------

    async def readiness(self) -> None:
        """Each ReplicaSet written moves one phase toward its spec: first its pods exist, then (on
        the event of that write) they are ready and available."""
        rs_res = self.res["rs"]
        driver = Write(manager="kube-controller-manager")
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.dirty = self.dirty, set()
            for n, (ns, name) in enumerate(batch):
                obj = self.store.objects[rs_res.key].get((ns, name))
                if obj is None:
                    continue
                status = next_status(obj)
                if status is not None:
                    self.store.patch(rs_res, "v1", ns, name, {"status": status}, MERGE, "status", driver)
                    self.readiness_writes += 1
                if n % 50 == 49:
                    await asyncio.sleep(0)  # let the server answer the controller meanwhile

    # --- spec changes ---------------------------------------------------------------------------

    async def change_specs(self, changes: int, interval: float) -> None:
        step = max(1, self.count // max(changes, 1))
        sample = self.keys[::step][:changes]
        writer = Write(manager="bench-user")
        for ns, name in sample:
            patch = {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "app", "image": "example/app:2.0", "ports": [{"containerPort": 8080}]}
                            ]
                        }
                    }
                }
            }
            self.changed_at[(ns, name)] = time.perf_counter()
            self.store.patch(self.res["rollout"], "v1alpha1", ns, name, patch, MERGE, "", writer)
            await asyncio.sleep(interval)
        self.changing_done = True
        if len(self.routed) == len(self.changed_at):
            self.all_routed.set()

    # --- keeping the emulator's own memory flat ----------------------------------------------------

    @property
    def requests(self) -> int:
        assert isinstance(self.api, BenchApiServer)
        return self.api.served


def next_status(rs: dict[str, Any]) -> dict[str, Any] | None:
    want = int(rs["spec"].get("replicas", 1))
    generation = rs["metadata"].get("generation", 1)
    status = rs.get("status") or {}
    have = int(status.get("replicas", 0))
    ready = int(status.get("readyReplicas", 0))
    if have != want or status.get("observedGeneration") != generation:
        return rs_status(want, min(ready, want), generation)
    if ready != want:
        return rs_status(want, want, generation)
    return None


def rs_status(replicas: int, ready: int, generation: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "fullyLabeledReplicas": replicas,
        "observedGeneration": generation,
    }


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": round(q(0.50), 4),
        "p90": round(q(0.90), 4),
        "p99": round(q(0.99), 4),
        "max": round(ordered[-1], 4),
        "min": round(ordered[0], 4),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rollouts", type=int, required=True)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--change-interval", type=float, default=0.1)
    # kopf ends each watch after 300 s and resumes from the last version it saw; a history shorter
    # than that many writes makes the resume a 410 and a re-list of every object, which wakes every
    # Rollout at once (as a compacted real API server would, but then it measures the re-list).
    ap.add_argument("--history-limit", type=int, default=300_000, help="watch events kept")
    ap.add_argument("--crds", type=Path, required=True, help="folder with the upstream Istio CRDs")
    ap.add_argument("--healthy-timeout", type=float, default=3600)
    ap.add_argument("--route-timeout", type=float, default=120)
    ap.add_argument("--wait-go", action="store_true", help='start the changes at a "go" line on stdin')
    args = ap.parse_args()

    api = BenchApiServer(store=BenchStore(history_limit=args.history_limit), keep_history=False)
    api.add_crds(rollwise_crds() + shared_crd_files(args.crds))
    bench = Bench(api, args.rollouts, args.namespaces)
    began = time.perf_counter()
    bench.populate()
    populate_s = time.perf_counter() - began
    async with serve(api):
        tasks = [asyncio.create_task(bench.readiness())]
        stdin_closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def watch_stdin() -> None:
            # "started": the controller process was just launched (the clock for "all healthy").
            while line := await reader.readline():
                if line.strip() == b"started":
                    started_at.append(time.perf_counter())
                elif line.strip() == b"go":
                    go.set()
            stdin_closed.set()
            go.set()

        go = asyncio.Event()

        started_at: list[float] = []
        tasks.append(asyncio.create_task(watch_stdin()))
        emit({"event": "serving", "url": str(api.url).rstrip("/"), "populate_s": round(populate_s, 2)})
        healthy = "timeout"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.healthy_timeout):
                await bench.all_healthy.wait()
                healthy = "ok"
        t0 = started_at[0] if started_at else began
        emit(
            {
                "event": "healthy",
                "result": healthy,
                "healthy": len(bench.healthy),
                "seconds_since_controller_start": round(time.perf_counter() - t0, 2),
                "requests": bench.requests,
                "readiness_writes": bench.readiness_writes,
            }
        )
        if args.wait_go:
            await go.wait()
        requests_before = bench.requests
        change_began = time.perf_counter()
        routed = "skipped"
        if healthy == "ok" and args.changes > 0:
            routed = "timeout"
            await bench.change_specs(args.changes, args.change_interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.route_timeout):
                    await bench.all_routed.wait()
                    routed = "ok"
        emit(
            {
                "event": "done",
                "result": routed,
                "changes": len(bench.changed_at),
                "routed": len(bench.routed),
                "spec_to_route_s": quantiles(list(bench.routed.values())),
                "change_phase_s": round(time.perf_counter() - change_began, 2),
                "change_phase_requests": bench.requests - requests_before,
                "requests_total": bench.requests,
                "readiness_writes": bench.readiness_writes,
                "objects": {k: len(v) for k, v in ((r.plural, api.store.objects[r.key]) for r in bench.res.values())}
                | {"events": len(api.store.objects[api.store.lookup("", "v1", "events")[0].key])},
                "emulator_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
        await stdin_closed.wait()
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
