"""FlagSet -> ConfigMap through the Kubernetes API (the emulated API server): created by
server-side apply with the exact document, owned by the FlagSet, and updated in place when a flag
changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import kubernetes_validate
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from rollwise.flags import document
from rollwise.flags.kube import apply_flagset
from rollwise.spec.flags import FlagSet
from rollwise.testing.kubeapi import ApiServer, rollwise_crds, serve
from tests.kube.helpers import kubeconfig

FlagSetResource = create_namespaced_resource("rollwise.dev", "v1alpha1", "FlagSet", "flagsets")

SPEC = {"flags": {"new-greeting": {"variants": {"on": True, "off": False}, "defaultVariant": "off"}}}


@pytest_asyncio.fixture
async def client() -> AsyncIterator[AsyncClient]:
    api: ApiServer
    async with serve() as api:
        api.add_crds(rollwise_crds())
        async with AsyncClient(kubeconfig(api), trust_env=False, field_manager="tests") as c:
            yield c
        assert not api.errors, api.errors


@pytest.mark.asyncio
async def test_flagset_becomes_its_configmap_and_follows_changes(client: AsyncClient) -> None:
    await client.create(Namespace(metadata=ObjectMeta(name="shop")))
    created = await client.create(FlagSetResource(metadata=ObjectMeta(name="web-flags", namespace="shop"), spec=SPEC))
    raw = created.to_dict()
    await apply_flagset(client, raw, "rollwise-controller")

    cm = await client.get(ConfigMap, "web-flags-flags", namespace="shop")
    doc = cm.to_dict()
    kubernetes_validate.validate(
        {k: v for k, v in doc.items() if k in ("apiVersion", "kind", "metadata", "data")}, "1.30", strict=True
    )
    fs = FlagSet.model_validate({"metadata": {"name": "web-flags"}, "spec": SPEC})
    expected = document.dumps(fs.flagd_document())
    assert cm.data == {"flags.json": expected}
    owner = doc["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("FlagSet", "web-flags", raw["metadata"]["uid"])

    changed = {"flags": {"new-greeting": {**SPEC["flags"]["new-greeting"], "defaultVariant": "on"}}}
    raw["spec"] = changed
    await apply_flagset(client, raw, "rollwise-controller")
    cm = await client.get(ConfigMap, "web-flags-flags", namespace="shop")
    assert cm.data is not None
    assert json.loads(cm.data["flags.json"])["flags"]["new-greeting"]["defaultVariant"] == "on"
