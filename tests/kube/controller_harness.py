"""What the controller tests share: the controller run as it runs in a cluster (its own thread
and event loop, as a separate process would, talking HTTP to the emulated API server), a
ReplicaSet readiness driver standing in for the ReplicaSet controller and the kubelet, and small
readers of the emulator's objects."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import SingleConfig
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.types import PatchType

from rollwise.platforms.kubernetes.commands import annotation
from rollwise.platforms.kubernetes.names import API_VERSION, REVISION_LABEL, ROLLOUT_LABEL, Rollout
from rollwise.platforms.kubernetes.operator import Controller, Settings, run
from rollwise.testing.kubeapi import ApiServer
from rollwise.testing.kubeapi.store import Event
from tests.kube.helpers import kubeconfig, wait_until

NS = "default"


def single_config(api: ApiServer) -> SingleConfig:
    config = kubeconfig(api).get()
    assert config is not None
    return config


class ControllerThread:
    """One controller replica in a thread of its own with its own event loop: kopf cancels every
    task of its loop when it stops, so it must not share the test's loop (nor another replica's)."""

    def __init__(self, api: ApiServer, identity: str | None = None, **settings: Any) -> None:
        self.config = single_config(api)
        defaults: dict[str, Any] = {"namespaces": [NS], "retry_seconds": 0.2, "renew_seconds": 0.5}
        self.settings = Settings(identity=identity or f"test-{uuid.uuid4().hex[:6]}", **{**defaults, **settings})
        self.started = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.controllers: list[Controller] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=f"controller-{self.settings.identity}", daemon=True)

    def start(self) -> ControllerThread:
        self._thread.start()
        return self

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            started = asyncio.Event()
            started_task = asyncio.ensure_future(started.wait())
            started_task.add_done_callback(lambda _: self.started.set())
            try:
                await run(self.config, self.settings, self._stop, started=started, controller_out=self.controllers)
            finally:
                started_task.cancel()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            self.finished.set()

    async def wait_started(self, timeout: float = 30) -> None:
        if not await asyncio.to_thread(self.started.wait, timeout):
            raise AssertionError(f"controller {self.settings.identity} did not start within {timeout}s")

    @property
    def leading(self) -> bool:
        return bool(self.controllers)

    async def stop(self, timeout: float = 30) -> None:
        while self._loop is None or self._stop is None:
            if self.finished.is_set():
                break
            await asyncio.sleep(0.01)
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        if not await asyncio.to_thread(self.finished.wait, timeout):
            raise AssertionError(f"controller {self.settings.identity} did not stop within {timeout}s")
        if self.error is not None:
            raise self.error


class ReadinessDriver:
    """The ReplicaSet controller and kubelet in miniature: after each write, a ReplicaSet's status
    moves one phase toward its spec — first its pods exist (`replicas`, `observedGeneration`), then,
    on the next pass, they are ready and available. Revisions told to stay unready keep
    `readyReplicas` at 0 ("*": every revision)."""

    def __init__(self, api: ApiServer, client: AsyncClient) -> None:
        self.api = api
        self.client = client
        self.unready: set[str] = set()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadinessDriver:
        self.api.store.on_commit.append(self._on_commit)
        self._task = asyncio.create_task(self._loop())
        self._dirty.set()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.api.store.on_commit.remove(self._on_commit)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def keep_unready(self, revision: str) -> None:
        self.unready.add(revision)
        self._dirty.set()

    def make_ready(self, revision: str) -> None:
        self.unready.discard(revision)
        self._dirty.set()

    def _on_commit(self, event: Event) -> None:
        self._dirty.set()

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            for rs in objects(self.api, "apps/v1", "ReplicaSet"):
                status = self._next_status(rs)
                if status is not None:
                    await self.client.patch(
                        ReplicaSet.Status,
                        rs["metadata"]["name"],
                        {"status": status},
                        namespace=rs["metadata"]["namespace"],
                        patch_type=PatchType.MERGE,
                    )

    def _next_status(self, rs: dict[str, Any]) -> dict[str, Any] | None:
        want = int(rs["spec"].get("replicas", 1))
        generation = rs["metadata"].get("generation", 1)
        status = rs.get("status") or {}
        have = int(status.get("replicas", 0))
        ready = int(status.get("readyReplicas", 0))
        held = "*" in self.unready or rs["metadata"]["labels"].get(REVISION_LABEL) in self.unready
        if have != want or status.get("observedGeneration") != generation:
            # Pods created (or gone) first; the ones left keep their readiness.
            ready = min(ready, want, 0 if held else want)
            return _rs_status(want, ready, generation)
        target = 0 if held else want
        if ready != target:
            return _rs_status(want, target, generation)
        return None


def _rs_status(replicas: int, ready: int, generation: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "fullyLabeledReplicas": replicas,
        "observedGeneration": generation,
    }


# --- a running controller ------------------------------------------------------------------------------


async def service(client: AsyncClient, name: str) -> None:
    """A Service for the strategy to point at a revision (its selector starts with the user's labels)."""
    await client.create(
        Service.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
    )


STABLE_AND_CANARY = ("web-stable", "web-canary")


@contextlib.asynccontextmanager
async def controller_running(
    api: ApiServer, client: AsyncClient, services: tuple[str, ...] = (), **settings: Any
) -> AsyncIterator[tuple[ControllerThread, ReadinessDriver]]:
    """The usual set-up of a controller test: `services` created, one controller replica started
    (and stopped at the end) and the readiness driver running."""
    await client.get(Namespace, NS)  # connect first (see docs/testing-kubernetes.md)
    for name in services:
        await service(client, name)
    controller = ControllerThread(api, **settings).start()
    async with ReadinessDriver(api, client) as driver:
        try:
            await controller.wait_started()
            yield controller, driver
        finally:
            await controller.stop()


# --- reading the emulator ----------------------------------------------------------------------------


def objects(api: ApiServer, api_version: str, kind: str, namespace: str = NS) -> Iterator[dict[str, Any]]:
    res = api.store.by_kind(api_version, kind)
    assert res is not None, kind
    version = api_version.rpartition("/")[2]
    for (ns, _), obj in sorted(api.store.objects[res.key].items()):
        if ns == namespace:
            yield api.store.render(res, version, obj)


def replicasets(api: ApiServer, rollout: str) -> dict[str, int]:
    """{revision: spec.replicas} of the rollout's ReplicaSets."""
    out = {}
    for rs in objects(api, "apps/v1", "ReplicaSet"):
        labels = rs["metadata"].get("labels") or {}
        if labels.get(ROLLOUT_LABEL) == rollout:
            out[labels[REVISION_LABEL]] = int(rs["spec"]["replicas"])
    return out


def selector(api: ApiServer, service: str) -> str | None:
    svc = api.get_object("v1", "Service", NS, service)
    assert svc is not None, service
    return (svc["spec"].get("selector") or {}).get(REVISION_LABEL)


def status(api: ApiServer, name: str) -> dict[str, Any]:
    obj = api.get_object(API_VERSION, "Rollout", NS, name)
    return (obj or {}).get("status") or {}


def weights(api: ApiServer, name: str) -> dict[str, int]:
    return {w["revision"]: w["weight"] for w in status(api, name).get("weights") or []}


def events(api: ApiServer, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about the rollout, oldest first."""
    found = [
        e
        for e in objects(api, "v1", "Event")
        if (e.get("involvedObject") or {}).get("name") == name
        and (e.get("involvedObject") or {}).get("kind") == "Rollout"
    ]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(e["type"], e["reason"], e["message"]) for e in found]


async def settle(api: ApiServer, predicate: Callable[[], Any], timeout: float = 20) -> Any:
    return await wait_until(api, predicate, timeout=timeout)


async def command(client: AsyncClient, name: str, verb: str, to_revision: int | None = None) -> str:
    """What `rollwise promote` (etc.) writes against a cluster; returns the command's id."""
    cid = str(uuid.uuid4())
    await client.patch(
        Rollout,
        name,
        {"metadata": {"annotations": annotation(cid, verb, to_revision)}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    return cid


class Trail:
    """Every distinct value `read()` took after each write the server committed, in order: states
    that last only until the next write are seen too, whatever the test's loop was doing."""

    def __init__(self, api: ApiServer, read: Callable[[], Any]) -> None:
        self.api = api
        self.read = read
        self.values: list[Any] = []

    def __enter__(self) -> Trail:
        self.api.store.on_commit.append(self._on_commit)
        self._on_commit(None)
        return self

    def __exit__(self, *_: object) -> None:
        self.api.store.on_commit.remove(self._on_commit)

    def _on_commit(self, _: Event | None) -> None:
        value = self.read()
        if not self.values or self.values[-1] != value:
            self.values.append(value)
