"""Feature flags through the controller: a FlagSet becomes its ConfigMap (the exact flagd document,
owned by the FlagSet) and a change to it is written in place; a Rollout naming it gets the
ConfigMap mounted in its ReplicaSet's pod template; a flag change reaches pods through the mount
without a new revision, while a change of a value exposed as an environment variable makes one."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import kubernetes_validate
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from rollwise.platforms.kubernetes.names import FlagSet
from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    command,
    controller_running,
    objects,
    replicasets,
    settle,
    status,
)
from tests.kube.router_checks import sent
from tests.kube.test_controller import create, spec

pytestmark = pytest.mark.asyncio

FLAGS: dict[str, Any] = {
    "new-greeting": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
    "banner-color": {
        "state": "ENABLED",
        "variants": {"blue": "#1f6feb", "green": "#2da44e"},
        "defaultVariant": "blue",
        "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "green", "blue"]},
    },
}
MOUNT = {"name": "rollwise-flags", "mountPath": "/etc/rollwise/flags", "readOnly": True}
FILE_ENV = {"name": "FLAGD_OFFLINE_FLAG_SOURCE_PATH", "value": "/etc/rollwise/flags/flags.json"}


@pytest_asyncio.fixture
async def running(api: ApiServer, client: AsyncClient) -> AsyncIterator[ControllerThread]:
    async with controller_running(api, client) as (controller, _):
        yield controller


async def flagset(client: AsyncClient, flags: dict[str, Any], env: list[dict[str, str]] | None = None) -> str:
    body: dict[str, Any] = {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "FlagSet",
        "metadata": {"name": "demo-flags", "namespace": NS},
        "spec": {"flags": flags, **({"env": env} if env else {})},
    }
    created = await client.create(FlagSet.from_dict(body))
    return str(created.metadata.uid)


async def set_default(client: AsyncClient, flag: str, variant: str) -> None:
    await client.patch(
        FlagSet,
        "demo-flags",
        {"spec": {"flags": {flag: {"defaultVariant": variant}}}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )


def configmap(api: ApiServer) -> dict[str, Any] | None:
    return api.get_object("v1", "ConfigMap", NS, "demo-flags-flags")


def document(api: ApiServer) -> dict[str, Any] | None:
    cm = configmap(api)
    return json.loads(cm["data"]["flags.json"]) if cm is not None else None


def pod_spec(api: ApiServer, revision: str) -> dict[str, Any]:
    rs = api.get_object("apps/v1", "ReplicaSet", NS, f"web-{revision}")
    assert rs is not None, revision
    return dict(rs["spec"]["template"]["spec"])


def validate_written(api: ApiServer) -> int:
    """Every ConfigMap the controller sent, and every ConfigMap and ReplicaSet as stored, against
    Kubernetes' own schema in strict mode (an unknown field fails)."""
    checked = 0
    for body in sent(api, "configmaps"):
        if "apiVersion" in body:  # the controller's applies (the tests' own patches are partial)
            kubernetes_validate.validate(body, "1.33", strict=True)
            checked += 1
    for api_version, kind in (("v1", "ConfigMap"), ("apps/v1", "ReplicaSet")):
        for obj in objects(api, api_version, kind):
            kubernetes_validate.validate({"apiVersion": api_version, "kind": kind, **obj}, "1.33", strict=True)
            checked += 1
    return checked


async def test_a_flagset_is_written_into_its_configmap_and_changed_in_place(
    api: ApiServer, client: AsyncClient, running: ControllerThread
) -> None:
    uid = await flagset(client, FLAGS)
    cm = await settle(api, lambda: configmap(api))
    assert cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "rollwise",
        "rollwise.dev/flagset": "demo-flags",
    }
    assert cm["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "FlagSet",
            "name": "demo-flags",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert list(cm["data"]) == ["flags.json"]
    # The exact flagd document, as the OpenFeature flagd provider reads it.
    assert (
        cm["data"]["flags.json"]
        == json.dumps(
            {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": FLAGS}, indent=2, ensure_ascii=False
        )
        + "\n"
    )

    await set_default(client, "new-greeting", "on")
    await settle(
        api, lambda: (document(api) or {}).get("flags", {}).get("new-greeting", {}).get("defaultVariant") == "on"
    )
    after = configmap(api)
    assert after is not None
    # The same object, updated: a mounted ConfigMap is refreshed in running pods only in place.
    assert after["metadata"]["uid"] == cm["metadata"]["uid"]
    want = copy.deepcopy(FLAGS)
    want["new-greeting"]["defaultVariant"] = "on"
    assert document(api) == {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": want}

    # The FlagSet is the source of truth: its ConfigMap edited or deleted by hand is written again.
    await client.patch(
        ConfigMap, "demo-flags-flags", {"data": {"flags.json": "{}"}}, namespace=NS, patch_type=PatchType.MERGE
    )
    await settle(api, lambda: document(api) == {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": want})
    await client.delete(ConfigMap, "demo-flags-flags", namespace=NS)
    await settle(api, lambda: document(api) == {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": want})
    assert validate_written(api) >= 5


async def test_a_rollout_mounts_its_flagset_and_only_env_values_make_a_new_revision(
    api: ApiServer, client: AsyncClient, running: ControllerThread
) -> None:
    await flagset(client, FLAGS, env=[{"name": "NEW_GREETING", "flag": "new-greeting"}])
    doc = spec({"recreate": {}}, replicas=2)
    doc["featureFlags"] = {"flagSet": "demo-flags"}
    await create(client, "web", doc)
    await settle(api, lambda: status(api, "web").get("phase") == "Healthy")
    (v1,) = replicasets(api, "web")
    pod = pod_spec(api, v1)
    assert pod["volumes"] == [{"name": "rollwise-flags", "configMap": {"name": "demo-flags-flags"}}]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [MOUNT]
    assert container["env"] == [FILE_ENV, {"name": "NEW_GREETING", "value": "false"}]
    # The Rollout's own template stays as its author wrote it.
    stored = api.get_object("rollwise.dev/v1alpha1", "Rollout", NS, "web")
    assert stored is not None and "volumes" not in stored["spec"]["template"]["spec"]

    # A flag read only from the file: the ConfigMap changes, the pods stay.
    await set_default(client, "banner-color", "green")
    await settle(api, lambda: (document(api) or {})["flags"]["banner-color"]["defaultVariant"] == "green")
    # A reconcile that starts after the change (it handles a command given after it) keeps v1.
    cid = await command(client, "web", "resume")
    await settle(api, lambda: status(api, "web").get("handledCommand") == cid)
    assert status(api, "web")["currentRevision"] == v1
    assert replicasets(api, "web") == {v1: 2}

    # A flag exposed as an environment variable: a new revision with the new value.
    await set_default(client, "new-greeting", "on")

    def rolled() -> bool:
        now = status(api, "web")
        return now.get("stableRevision") not in (None, v1) and now.get("phase") == "Healthy"

    await settle(api, rolled)
    v2 = status(api, "web")["stableRevision"]
    await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 2})
    assert pod_spec(api, v2)["containers"][0]["env"] == [FILE_ENV, {"name": "NEW_GREETING", "value": "true"}]
    assert pod_spec(api, v1)["containers"][0]["env"] == [FILE_ENV, {"name": "NEW_GREETING", "value": "false"}]
    assert validate_written(api) >= 5


async def test_a_container_keeps_its_own_value_of_a_flag_variable(
    api: ApiServer, client: AsyncClient, running: ControllerThread
) -> None:
    await flagset(client, FLAGS, env=[{"name": "NEW_GREETING", "flag": "new-greeting"}])
    doc = spec({"recreate": {}}, replicas=1)
    doc["template"]["spec"]["containers"][0]["env"] = [{"name": "NEW_GREETING", "value": "forced"}]
    doc["featureFlags"] = {"flagSet": "demo-flags", "mountPath": "/flags", "fileEnv": "FLAGS_FILE"}
    await create(client, "web", doc)
    await settle(api, lambda: status(api, "web").get("phase") == "Healthy")
    (v1,) = replicasets(api, "web")
    (container,) = pod_spec(api, v1)["containers"]
    assert container["volumeMounts"] == [{**MOUNT, "mountPath": "/flags"}]
    assert container["env"] == [
        {"name": "NEW_GREETING", "value": "forced"},
        {"name": "FLAGS_FILE", "value": "/flags/flags.json"},
    ]
    assert validate_written(api) >= 2


async def test_a_rollout_whose_flagset_appears_later_gets_its_env_in_a_new_revision(
    api: ApiServer, client: AsyncClient, running: ControllerThread
) -> None:
    doc = spec({"recreate": {}}, replicas=1)
    doc["featureFlags"] = {"flagSet": "demo-flags"}
    await create(client, "web", doc)
    await settle(api, lambda: status(api, "web").get("phase") == "Healthy")
    (v1,) = replicasets(api, "web")
    assert pod_spec(api, v1)["containers"][0]["env"] == [FILE_ENV]
    await flagset(client, FLAGS, env=[{"name": "NEW_GREETING", "flag": "new-greeting"}])

    def rolled() -> bool:
        now = status(api, "web")
        return now.get("stableRevision") not in (None, v1) and now.get("phase") == "Healthy"

    await settle(api, rolled)
    v2 = status(api, "web")["stableRevision"]
    assert pod_spec(api, v2)["containers"][0]["env"] == [FILE_ENV, {"name": "NEW_GREETING", "value": "false"}]
    await settle(api, lambda: replicasets(api, "web") == {v1: 0, v2: 1})
