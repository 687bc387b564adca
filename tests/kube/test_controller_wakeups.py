"""What wakes a Rollout: anyone else's change to it or to its ReplicaSets does, at once; the watch
events of the controller's own writes (its status, the command annotation it removes, the
ReplicaSets it creates and scales) do not, since they show nothing the reconcile that wrote them
did not already plan on. The counts come from the controller's own counters, as /metrics shows
them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from rollwise.platforms.kubernetes.endpoints import metrics_text
from rollwise.platforms.kubernetes.names import Rollout, replicaset_name
from rollwise.platforms.kubernetes.operator import Controller, Probe
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import NS, ControllerThread, ReadinessDriver, command, replicasets, settle, status
from tests.kube.test_controller import create, healthy, revision_of, set_image, spec

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def running(api: ApiServer, client: AsyncClient) -> AsyncIterator[tuple[ControllerThread, ReadinessDriver]]:
    await client.get(Namespace, NS)
    controller = ControllerThread(api).start()
    async with ReadinessDriver(api, client) as driver:
        try:
            await controller.wait_started()
            yield controller, driver
        finally:
            await controller.stop()


def metric(c: Controller, name: str) -> float:
    for line in metrics_text(Probe(leading=True, controller=c)).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)  # the controller's counters live in its own thread


def idle(c: Controller, key: tuple[str, str] = (NS, "web")) -> bool:
    worker = c.workers.get(key)
    return c.completed == c.reconciles and (worker is None or not worker.wakeup.is_set())


async def test_a_command_is_one_reconcile_and_its_own_writes_wake_nothing(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    doc = spec({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}, replicas=2)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    c = controller.controllers[0]
    await until(lambda: idle(c))
    reconciles = metric(c, "rollwise_controller_reconciles_total")
    own = metric(c, "rollwise_controller_own_write_events_total")

    # The command's reconcile writes the status and removes the annotation: two writes, two watch
    # events, neither of which wakes the Rollout again.
    cid = await command(client, "web", "pause")
    await settle(api, lambda: status(api, "web").get("handledCommand") == cid)
    await until(lambda: metric(c, "rollwise_controller_own_write_events_total") >= own + 2)
    # An edit by someone else after those events: exactly one more reconcile.
    await client.patch(
        Rollout, "web", {"metadata": {"labels": {"team": "a"}}}, namespace=NS, patch_type=PatchType.MERGE
    )
    await until(lambda: metric(c, "rollwise_controller_reconciles_total") >= reconciles + 2 and idle(c))
    assert metric(c, "rollwise_controller_reconciles_total") == reconciles + 2
    assert metric(c, "rollwise_controller_own_write_events_total") == own + 2


async def test_someone_elses_replicaset_edit_is_reconciled_at_once(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    doc = spec({"recreate": {}}, replicas=3)
    await create(client, "web", doc)
    v1 = revision_of(doc)
    await settle(api, lambda: healthy(api, "web", v1))
    c = controller.controllers[0]
    await until(lambda: idle(c))
    reconciles = c.reconciles
    # Scaled by hand: the next resync is minutes away, the event alone brings it back.
    await client.patch(
        ReplicaSet,
        replicaset_name("web", v1),
        {"spec": {"replicas": 1}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await settle(api, lambda: replicasets(api, "web") == {v1: 3} and healthy(api, "web", v1))
    assert c.reconciles > reconciles
    assert controller.settings.resync_seconds >= 300


async def test_a_spec_change_is_carried_through_on_events_alone(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    # Every step after the edit is woken by someone else's write (the ReplicaSets' readiness) or a
    # timed step; none waits for a resync (minutes away by default).
    controller, _ = running
    doc = spec({"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}, replicas=2)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    await settle(api, lambda: healthy(api, "web", revision_of(doc2)))
    assert replicasets(api, "web") == {revision_of(doc): 0, revision_of(doc2): 2}
    c = controller.controllers[0]
    assert c.own_events > 0
    assert c.failures == 0
