"""The controller in-process against the emulated API server, one strategy at a time: the exact
ReplicaSets (revision -> replicas) and Service selectors after each step, with a readiness driver
playing the ReplicaSet controller. Without trafficRouting no router is involved: weights follow
ready replicas, as a plain Service does."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.types import PatchType

from rollwise.engine.revision import revision_name
from rollwise.platforms.kubernetes.names import Rollout
from rollwise.spec.rollout import RolloutSpec
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    ReadinessDriver,
    command,
    controller_running,
    events,
    replicasets,
    selector,
    service,
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
    async with controller_running(api, client) as running:
        yield running


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


def canary_strategy(**extra: Any) -> dict[str, Any]:
    return {
        "canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}],
            **extra,
        }
    }


def step(api: ApiServer, name: str) -> int | None:
    return status(api, name).get("currentStepIndex")


def handled(api: ApiServer, name: str, cid: str) -> bool:
    obj = api.get_object("rollwise.dev/v1alpha1", "Rollout", NS, name) or {}
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return status(api, name).get("handledCommand") == cid and "rollwise.dev/command" not in annotations


async def test_canary_steps_pause_and_promote_without_a_router(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await service(client, "web-stable")
    await service(client, "web-canary")
    doc = spec(canary_strategy())
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    assert replicasets(api, "web") == {v1: 4}
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v1)

    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    # Step 1/4 setWeight 25 then the pause: without a router, replicas are the weights.
    await settle(api, lambda: step(api, "web") == 1 and status(api, "web").get("phase") == "Paused")
    print(replicasets(api, "web"), weights(api, "web"))
    assert replicasets(api, "web") == {v1: 3, v2: 1}
    assert weights(api, "web") == {v1: 75, v2: 25}
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v2)

    cid = await command(client, "web", "promote")
    await settle(api, lambda: handled(api, "web", cid))
    await settle(api, lambda: step(api, "web") == 3 and status(api, "web").get("phase") == "Paused")
    print(replicasets(api, "web"), weights(api, "web"))
    assert replicasets(api, "web") == {v1: 2, v2: 2}
    assert weights(api, "web") == {v1: 50, v2: 50}

    cid = await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2))
    print(replicasets(api, "web"), weights(api, "web"))
    assert replicasets(api, "web") == {v1: 0, v2: 4}
    assert weights(api, "web") == {v2: 100}
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v2, v2)
    assert status(api, "web")["handledCommand"] == cid


async def test_canary_abort_then_undo(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await service(client, "web-stable")
    await service(client, "web-canary")
    doc = spec(canary_strategy())
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 1 and replicasets(api, "web") == {v1: 3, v2: 1})

    cid = await command(client, "web", "abort")
    await settle(api, lambda: handled(api, "web", cid) and status(api, "web").get("phase") == "Aborted")
    await settle(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0} and weights(api, "web") == {v1: 100})
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v1)

    # retry runs the steps again from the first; promote --full finishes the update.
    cid = await command(client, "web", "retry")
    await settle(api, lambda: handled(api, "web", cid) and step(api, "web") == 1)
    await settle(api, lambda: replicasets(api, "web") == {v1: 3, v2: 1})
    cid = await command(client, "web", "promoteFull")
    await settle(api, lambda: healthy(api, "web", v2))
    assert replicasets(api, "web") == {v1: 0, v2: 4}

    # undo: back to revision 1 (an ordinary update through the steps, since v1 is scaled down).
    cid = await command(client, "web", "undo", to_revision=1)
    await settle(api, lambda: handled(api, "web", cid) and step(api, "web") == 1)
    await settle(api, lambda: replicasets(api, "web") == {v1: 1, v2: 3})
    assert status(api, "web")["undo"]["revision"] == v1
    cid = await command(client, "web", "promoteFull")
    await settle(api, lambda: healthy(api, "web", v1))
    assert replicasets(api, "web") == {v1: 4, v2: 0}
    assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v1, v1)


async def test_a_command_is_handled_once(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    doc = spec({"recreate": {}}, replicas=1)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    cid = await command(client, "web", "pause")
    await settle(api, lambda: handled(api, "web", cid))
    assert status(api, "web")["lastCommand"]["accepted"] is True
    assert status(api, "web")["phase"] == "Paused"
    # The same id again (a client retrying) is not given to the engine a second time: a second
    # pause would be refused as "already paused".
    first = status(api, "web")["lastCommand"]
    await client.patch(
        Rollout,
        "web",
        {"metadata": {"annotations": {"rollwise.dev/command": f'{{"id":"{cid}","verb":"pause"}}'}}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await settle(api, lambda: handled(api, "web", cid))
    assert status(api, "web")["lastCommand"] == first
    # A malformed command is refused with an event, and removed.
    await client.patch(
        Rollout,
        "web",
        {"metadata": {"annotations": {"rollwise.dev/command": '{"id":"x","verb":"fly"}'}}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await settle(api, lambda: any(e[1] == "InvalidCommand" for e in events(api, "web")))
    await settle(api, lambda: handled(api, "web", cid))
    resume = await command(client, "web", "resume")
    await settle(api, lambda: handled(api, "web", resume) and status(api, "web")["phase"] == "Healthy")


async def test_blue_green_preview_then_promote(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await service(client, "web-active")
    await service(client, "web-preview")
    strategy = {
        "blueGreen": {
            "activeService": "web-active",
            "previewService": "web-preview",
            "autoPromotionEnabled": False,
            "scaleDownDelaySeconds": 0,
        }
    }
    doc = spec(strategy, replicas=3)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    assert replicasets(api, "web") == {v1: 3}
    assert (selector(api, "web-active"), selector(api, "web-preview")) == (v1, v1)

    _, driver = running
    doc2 = spec(strategy, replicas=3, image="example/app:2.0")
    v2 = revision_of(doc2)
    driver.keep_unready(v2)
    await set_image(client, "web", doc, "example/app:2.0")
    await settle(api, lambda: replicasets(api, "web") == {v1: 3, v2: 3})
    # The preview Service waits until every preview pod is ready.
    await settle(api, lambda: "waits for every pod" in (status(api, "web").get("message") or ""))
    assert (selector(api, "web-active"), selector(api, "web-preview")) == (v1, v1)
    driver.make_ready(v2)
    await settle(api, lambda: status(api, "web").get("phase") == "Paused" and selector(api, "web-preview") == v2)
    assert selector(api, "web-active") == v1
    assert weights(api, "web") == {v1: 100}

    await command(client, "web", "promote")
    await settle(api, lambda: healthy(api, "web", v2))
    await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 3})
    assert (selector(api, "web-active"), selector(api, "web-preview")) == (v2, v2)


async def test_rolling_update_moves_within_surge_and_unavailability(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    strategy = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    doc = spec(strategy, replicas=3)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    _, driver = running
    doc2 = spec(strategy, replicas=3, image="example/app:2.0")
    v2 = revision_of(doc2)
    driver.keep_unready(v2)
    await set_image(client, "web", doc, "example/app:2.0")
    # One surge replica of v2; none of v1 goes while it is not available.
    await settle(api, lambda: replicasets(api, "web") == {v1: 3, v2: 1})
    await settle(api, lambda: status(api, "web").get("revisions") is not None)
    assert weights(api, "web") == {v1: 100}
    driver.make_ready(v2)
    await settle(api, lambda: healthy(api, "web", v2))
    assert replicasets(api, "web") == {v1: 0, v2: 3}
    assert weights(api, "web") == {v2: 100}


async def test_a_timed_pause_ends_by_itself(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    strategy = canary_strategy()
    strategy["canary"]["steps"] = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    doc = spec(strategy, replicas=2)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await service(client, "web-stable")
    await service(client, "web-canary")
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 1 and replicasets(api, "web") == {v1: 1, v2: 1})
    # Nothing else happens: the controller looks again when the plan says the pause ends.
    await settle(api, lambda: healthy(api, "web", v2))
    assert replicasets(api, "web") == {v1: 0, v2: 2}


async def test_old_revisions_past_the_history_limit_are_deleted(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    doc = spec({"recreate": {}}, replicas=1)
    doc["revisionHistoryLimit"] = 1
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    await settle(api, lambda: healthy(api, "web", revision_of(doc2)))
    doc3 = await set_image(client, "web", doc2, "example/app:3.0")
    await settle(api, lambda: healthy(api, "web", revision_of(doc3)))
    # The newest former revision is kept (scaled to 0) for an undo; the one before is gone.
    await settle(api, lambda: replicasets(api, "web") == {revision_of(doc2): 0, revision_of(doc3): 1})


async def test_the_status_is_written_only_when_it_changes(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    doc = spec({"recreate": {}}, replicas=1)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))

    c = controller.controllers[0]
    mark = len(api.audit)
    # An edit that changes nothing the engine sees: the rollout is reconciled, its status is not written.
    await client.patch(
        Rollout, "web", {"metadata": {"labels": {"team": "a"}}}, namespace=NS, patch_type=PatchType.MERGE
    )

    def read_again_and_idle() -> bool:
        later = api.audit[mark + 1 :]
        return any(a.verb == "get" and a.resource == "rollouts" for a in later) and c.completed == c.reconciles

    async with asyncio.timeout(20):
        while not read_again_and_idle():
            await asyncio.sleep(0.02)  # the controller's progress lives in its own thread
    assert not [a for a in api.audit[mark:] if a.resource == "rollouts" and a.subresource == "status"]


async def test_a_deleted_rollout_takes_its_replicasets_and_can_come_back(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    controller, _ = running
    doc = spec({"recreate": {}}, replicas=2)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    await client.delete(Rollout, "web", namespace=NS)
    # Owner references: the ReplicaSets go with it; the controller drops its worker.
    await settle(api, lambda: replicasets(api, "web") == {})
    async with asyncio.timeout(20):
        while controller.controllers[0].workers:
            await asyncio.sleep(0.02)  # the controller's state lives in its own thread
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", revision_of(doc)))
    assert replicasets(api, "web") == {revision_of(doc): 2}


async def test_blue_green_abort_keeps_active_and_scales_the_preview_down(
    api: ApiServer, client: AsyncClient, running: tuple[ControllerThread, ReadinessDriver]
) -> None:
    await service(client, "web-active")
    await service(client, "web-preview")
    strategy = {
        "blueGreen": {"activeService": "web-active", "previewService": "web-preview", "autoPromotionEnabled": False}
    }
    doc = spec(strategy, replicas=2)
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: selector(api, "web-preview") == v2 and status(api, "web").get("phase") == "Paused")
    assert replicasets(api, "web") == {v1: 2, v2: 2}

    await command(client, "web", "abort")
    await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
    await settle(api, lambda: replicasets(api, "web") == {v1: 2, v2: 0} and selector(api, "web-preview") == v1)
    assert selector(api, "web-active") == v1
    assert weights(api, "web") == {v1: 100}
