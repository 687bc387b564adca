"""The controller in-process against the emulated API server, one strategy at a time: the exact
ReplicaSets (revision -> replicas) and Service selectors after each step, with a readiness driver
playing the ReplicaSet controller. Without trafficRouting no router is involved: weights follow
ready replicas, as a plain Service does."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from rollwise.engine.revision import revision_name
from rollwise.platforms.kubernetes.names import Rollout
from rollwise.spec.rollout import RolloutSpec
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    ReadinessDriver,
    replicasets,
    settle,
    status,
    weights,
)

pytestmark = pytest.mark.asyncio


def spec(strategy: dict[str, Any], replicas: int = 4, image: str = "example/app:1.0") -> dict[str, Any]:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
        },
        "strategy": strategy,
    }


def revision_of(doc: dict[str, Any]) -> str:
    return revision_name(RolloutSpec.model_validate(doc), {})


async def service(client: AsyncClient, name: str) -> None:
    from lightkube.resources.core_v1 import Service

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


async def create(client: AsyncClient, name: str, doc: dict[str, Any]) -> None:
    await client.create(
        Rollout.from_dict(
            {
                "apiVersion": "rollwise.dev/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": name, "namespace": NS},
                "spec": doc,
            }
        )
    )


async def set_image(client: AsyncClient, name: str, doc: dict[str, Any], image: str) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    new["template"]["spec"]["containers"][0]["image"] = image
    await client.patch(Rollout, name, {"spec": {"template": new["template"]}}, namespace=NS, patch_type=PatchType.MERGE)
    return new


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


def healthy(api: ApiServer, name: str, revision: str) -> bool:
    s = status(api, name)
    return s.get("phase") == "Healthy" and s.get("stableRevision") == revision


async def test_recreate_stops_the_old_revision_before_starting_the_new(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    doc = spec({"recreate": {}}, replicas=3)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    assert replicasets(api, "web") == {v1: 3}
    assert weights(api, "web") == {v1: 100}

    _, driver = running
    doc2 = spec({"recreate": {}}, replicas=3, image="example/app:2.0")
    v2 = revision_of(doc2)
    driver.keep_unready(v2)
    await set_image(client, "web", doc, "example/app:2.0")
    # Old revision gone first, then the new one scaled up (never both with replicas).
    await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 3})
    assert weights(api, "web") == {}
    driver.make_ready(v2)
    await settle(api, lambda: healthy(api, "web", v2))
    assert replicasets(api, "web")[v2] == 3
    assert weights(api, "web") == {v2: 100}
