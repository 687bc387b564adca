"""kopf, the controller framework Rollwise builds on, runs in-process against the emulator: it
discovers the resources, watches a custom resource, runs handlers that patch the status subresource,
adds and removes its finalizer, and stops cleanly. The test is async because the emulator serves
from the test's own event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from rollwise.testing.kubeapi import ApiServer
from tests.kube.helpers import Rollout, rollout, wait_until

pytestmark = pytest.mark.asyncio

GROUP, VERSION, PLURAL = "rollwise.dev", "v1alpha1", "rollouts"


def operator_registry(api: ApiServer) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=str(api.url).rstrip("/"), insecure=True, default_namespace="default")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Rollwise's status schema is closed: kopf's own bookkeeping goes to annotations, where
        # the server keeps it (it would prune an unknown status.kopf field, as a real one does).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.rollwise.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="kopf.rollwise.dev")
        settings.networking.connect_timeout = 5

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Progressing"
        patch.status["message"] = f"{spec['replicas']} replicas wanted"

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec.replicas", registry=registry)
    def scaled(new: Any, patch: kopf.Patch, **_: Any) -> None:
        patch.status["message"] = f"{new} replicas wanted"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
        memo["deleted"].append(name)

    return registry


async def test_kopf_runs_in_process_against_the_emulator(api: ApiServer, client: AsyncClient) -> None:
    # kopf's shutdown waits up to 5 s for every task created after it started, and the server's
    # task for a keep-alive connection is one: connect the test's client first.
    await client.get(Namespace, "default")
    memo = kopf.Memo(deleted=[])  # shallow-copied per object: the list is shared
    stop, ready = asyncio.Event(), asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=operator_registry(api),
            standalone=True,
            namespaces=["default"],
            memo=memo,
            stop_flag=stop,
            ready_flag=ready,
        )
    )

    def rollout_status() -> dict[str, Any]:
        obj = api.get_object(f"{GROUP}/{VERSION}", "Rollout", "default", "web")
        return (obj or {}).get("status") or {}

    try:
        async with asyncio.timeout(20):
            await ready.wait()
        await client.create(rollout("web", replicas=2))
        status = await wait_until(api, lambda: rollout_status().get("phase") == "Progressing" and rollout_status())
        assert status["message"] == "2 replicas wanted"
        obj = await client.get(Rollout, "web")
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj.metadata.finalizers
        assert obj.metadata.generation == 1  # status and annotations do not count as spec changes

        await client.patch(Rollout, "web", {"spec": {"replicas": 5}}, patch_type=PatchType.MERGE)
        await wait_until(api, lambda: rollout_status().get("message") == "5 replicas wanted")

        await client.delete(Rollout, "web")
        await wait_until(api, lambda: api.get_object(f"{GROUP}/{VERSION}", "Rollout", "default", "web") is None)
        assert memo["deleted"] == ["web"]
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await operator

    # The controller stack spoke the API as a controller would: watches, status patches, finalizers.
    used = {(a.verb, a.resource, a.subresource) for a in api.audit if a.resource == PLURAL}
    assert {("watch", PLURAL, ""), ("patch", PLURAL, "status"), ("patch", PLURAL, "")} <= used
    assert all(a.code < 500 for a in api.audit)
