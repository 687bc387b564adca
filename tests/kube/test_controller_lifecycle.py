"""The controller's life beyond one strategy: a restart mid-rollout (a fresh controller with only
the API's state continues to the same outcome), leader election (a second replica does nothing
while the first holds the Lease, then takes over), config changes starting a rollout, the scale
subresource, workloadRef, and every object it writes validated against Kubernetes' own schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kubernetes_validate
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
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
    events,
    objects,
    replicasets,
    selector,
    settle,
    status,
)
from tests.kube.test_controller import canary_strategy, create, healthy, revision_of, service, set_image, spec, step

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def driver(api: ApiServer, client: AsyncClient) -> AsyncIterator[ReadinessDriver]:
    await client.get(Namespace, NS)  # connect before any controller starts
    async with ReadinessDriver(api, client) as d:
        yield d


async def test_a_restarted_controller_continues_to_the_same_outcome(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    await service(client, "web-stable")
    await service(client, "web-canary")
    doc = spec(canary_strategy())
    v1 = revision_of(doc)
    first = ControllerThread(api).start()
    await first.wait_started()
    try:
        await create(client, "web", doc)
        await settle(api, lambda: healthy(api, "web", v1))
        doc2 = await set_image(client, "web", doc, "example/app:2.0")
        v2 = revision_of(doc2)
        await settle(api, lambda: step(api, "web") == 1 and replicasets(api, "web") == {v1: 3, v2: 1})
    finally:
        await first.stop()
    paused_at = status(api, "web")

    # While no controller runs, a user promotes.
    cid = await command(client, "web", "promote")
    second = ControllerThread(api).start()
    await second.wait_started()
    try:
        await settle(api, lambda: status(api, "web").get("handledCommand") == cid and step(api, "web") == 3)
        await settle(api, lambda: replicasets(api, "web") == {v1: 2, v2: 2})
        # The history and the update it continues are the ones the first controller wrote.
        assert status(api, "web")["history"] == paused_at["history"]
        assert status(api, "web")["updateStartedAt"] == paused_at["updateStartedAt"]
        await command(client, "web", "promote")
        await settle(api, lambda: healthy(api, "web", v2))
        assert replicasets(api, "web") == {v1: 0, v2: 4}
        assert (selector(api, "web-stable"), selector(api, "web-canary")) == (v2, v2)
    finally:
        await second.stop()


async def test_a_second_replica_waits_for_the_lease_then_takes_over(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    a = ControllerThread(api, identity="replica-a", lease_seconds=30).start()
    await a.wait_started()
    b = ControllerThread(api, identity="replica-b", lease_seconds=30).start()
    try:
        doc = spec({"recreate": {}}, replicas=2)
        await create(client, "web", doc)
        await settle(api, lambda: healthy(api, "web", revision_of(doc)))
        lease = api.get_object("coordination.k8s.io/v1", "Lease", NS, "rollwise-controller")
        assert lease is not None and lease["spec"]["holderIdentity"] == "replica-a"
        # b has been trying all along and never started operating.
        assert not b.started.is_set() and not b.leading
        assert all(e[2] for e in events(api, "web"))

        await a.stop()  # a clean stop gives the lease up at once
        await b.wait_started()
        lease = api.get_object("coordination.k8s.io/v1", "Lease", NS, "rollwise-controller")
        assert lease is not None and lease["spec"]["holderIdentity"] == "replica-b"
        assert lease["spec"]["leaseTransitions"] == 1
        doc2 = await set_image(client, "web", doc, "example/app:2.0")
        await settle(api, lambda: healthy(api, "web", revision_of(doc2)))
        assert b.controllers[0].reconciles > 0
    finally:
        await a.stop()
        await b.stop()


async def test_a_config_change_starts_a_rollout_and_the_scale_subresource_scales(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    await client.create(ConfigMap.from_dict({"metadata": {"name": "web-config", "namespace": NS}, "data": {"a": "1"}}))
    doc = spec({"recreate": {}}, replicas=2)
    await client.create(Secret.from_dict({"metadata": {"name": "web-secret", "namespace": NS}, "data": {"k": "MQ=="}}))
    doc["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "web-config"}},
        {"secretRef": {"name": "web-secret"}},
    ]
    controller = ControllerThread(api).start()
    await controller.wait_started()
    try:
        await create(client, "web", doc)
        await settle(api, lambda: status(api, "web").get("phase") == "Healthy")
        (v1,) = replicasets(api, "web")
        assert v1 != revision_of(doc)  # the config's content is part of the revision
        await client.patch(ConfigMap, "web-config", {"data": {"a": "2"}}, namespace=NS, patch_type=PatchType.MERGE)

        def updated() -> bool:
            now = status(api, "web")
            return now.get("stableRevision") not in (None, v1) and now["phase"] == "Healthy"

        await settle(api, updated)
        v2 = status(api, "web")["stableRevision"]
        await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 2})

        # An HPA writes /scale: the stable ReplicaSet follows.
        await client.patch(Rollout.Scale, "web", {"spec": {"replicas": 5}}, namespace=NS, patch_type=PatchType.MERGE)
        await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 5})
        scale = await client.get(Rollout.Scale, "web", namespace=NS)
        await settle(api, lambda: status(api, "web").get("replicas") == 5)
        assert scale.spec.replicas == 5
        assert status(api, "web")["selector"] == "app=web"

        # A Secret edit is a new revision too.
        await client.patch(Secret, "web-secret", {"data": {"k": "Mg=="}}, namespace=NS, patch_type=PatchType.MERGE)

        def third() -> bool:
            now = status(api, "web")
            return now.get("stableRevision") not in (None, v1, v2) and now["phase"] == "Healthy"

        await settle(api, third)
        v3 = status(api, "web")["stableRevision"]
        await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 0, v3: 5})
    finally:
        await controller.stop()


async def test_workload_ref_reads_the_deployment_and_scales_it_down_on_success(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "example/app:1.0"}]},
    }
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    doc = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "workloadRef": {"name": "web", "scaleDown": "onsuccess"},
        "strategy": {"recreate": {}},
    }
    controller = ControllerThread(api).start()
    await controller.wait_started()
    try:
        # The Deployment is not there yet: a Warning event; its creation wakes the rollout.
        await create(client, "web", doc)
        await settle(api, lambda: any(e[1] == "WorkloadNotFound" for e in events(api, "web")))
        await client.create(Deployment.from_dict(deployment))
        await settle(api, lambda: status(api, "web").get("phase") == "Healthy")
        (rev,) = replicasets(api, "web")
        rs = api.get_object("apps/v1", "ReplicaSet", NS, f"web-{rev}")
        assert rs is not None
        assert rs["spec"]["template"]["spec"] == template["spec"]
        assert rev == revision_name(RolloutSpec.model_validate(doc), {"Deployment/web": _hash_of(template)})
        await settle(api, lambda: (api.get_object("apps/v1", "Deployment", NS, "web") or {})["spec"]["replicas"] == 0)
    finally:
        await controller.stop()


async def test_workload_ref_scaled_down_progressively(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "a:1"}]}}
    await client.create(
        Deployment.from_dict(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            }
        )
    )
    doc = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "workloadRef": {"name": "web", "scaleDown": "progressively"},
        "strategy": {"recreate": {}},
    }
    driver.keep_unready("*")  # no revision is ready until released below
    controller = ControllerThread(api).start()
    await controller.wait_started()
    try:
        await create(client, "web", doc)
        await settle(api, lambda: len(replicasets(api, "web")) == 1)
        (rev,) = replicasets(api, "web")

        def deployment_replicas() -> int:
            return int((api.get_object("apps/v1", "Deployment", NS, "web") or {})["spec"]["replicas"])

        # Nothing of the rollout is available: the Deployment keeps serving at full size.
        await settle(api, lambda: status(api, "web").get("phase") == "Progressing")
        assert deployment_replicas() == 3
        driver.make_ready("*")
        await settle(api, lambda: status(api, "web").get("phase") == "Healthy" and deployment_replicas() == 0)
        assert replicasets(api, "web") == {rev: 3}
    finally:
        await controller.stop()


def _hash_of(template: dict[str, Any]) -> str:
    from rollwise.platforms.kubernetes.workloads import content_hash

    return content_hash(template)


async def test_every_object_the_controller_writes_is_valid_kubernetes(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    await service(client, "web-stable")
    await service(client, "web-canary")
    doc = spec(canary_strategy())
    controller = ControllerThread(api).start()
    await controller.wait_started()
    try:
        await create(client, "web", doc)
        await settle(api, lambda: healthy(api, "web", revision_of(doc)))
        await set_image(client, "web", doc, "example/app:2.0")
        await settle(api, lambda: step(api, "web") == 1)
        await command(client, "web", "abort")
        await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
    finally:
        await controller.stop()
    written = {
        (a.group, a.resource)
        for a in api.audit
        if a.verb in ("create", "patch", "update") and a.resource not in ("rollouts",)
    }
    assert {("apps", "replicasets"), ("", "services"), ("", "events"), ("coordination.k8s.io", "leases")} <= written
    checked = 0
    for api_version, kind in (
        ("apps/v1", "ReplicaSet"),
        ("v1", "Service"),
        ("v1", "Event"),
        ("coordination.k8s.io/v1", "Lease"),
    ):
        for obj in objects(api, api_version, kind):
            obj = {"apiVersion": api_version, "kind": kind, **obj}
            kubernetes_validate.validate(obj, "1.33", strict=True)
            checked += 1
    assert checked >= 8
    # The event stream tells the story a user reads in `kubectl describe rollout`.
    reasons = [e[1] for e in events(api, "web")]
    assert {"NewRevision", "Step", "ServiceSelected", "Command", "Aborted"} <= set(reasons)


async def test_a_leader_that_finds_another_holder_stops_acting(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    from lightkube.resources.coordination_v1 import Lease

    from rollwise.platforms.kubernetes.operator import LeadershipLost

    a = ControllerThread(api, identity="replica-a", lease_seconds=30, renew_seconds=0.2).start()
    await a.wait_started()
    lease = await client.get(Lease, "rollwise-controller", namespace=NS)
    assert lease.spec is not None
    lease.spec.holderIdentity = "someone-else"
    await client.replace(lease)
    # At its next renewal it sees the other holder: it stops its workers and kopf, and fails.
    await asyncio.to_thread(a.finished.wait, 20)
    assert a.finished.is_set()
    assert isinstance(a.error, LeadershipLost)
    holder = api.get_object("coordination.k8s.io/v1", "Lease", NS, "rollwise-controller")
    assert holder is not None and holder["spec"]["holderIdentity"] == "someone-else"  # not released: not ours
    a.error = None
    await a.stop()


async def test_a_leader_that_cannot_renew_for_a_lease_duration_stops_acting(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver
) -> None:
    import kmock

    from rollwise.platforms.kubernetes.operator import LeadershipLost

    a = ControllerThread(api, identity="replica-a", lease_seconds=2, renew_seconds=0.2).start()
    await a.wait_started()
    failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503, "reason": "ServiceUnavailable"}
    (
        api["get", kmock.resource("coordination.k8s.io/v1/leases")]
        << 503
        << kmock.headers({"Content-Type": "application/json"})
        << failure
    )
    # The API server answers nothing useful about the lease: after a lease duration without a
    # renewal the replica must assume another one leads, and stop.
    await asyncio.to_thread(a.finished.wait, 30)
    assert isinstance(a.error, LeadershipLost)
    a.error = None
    await a.stop()
