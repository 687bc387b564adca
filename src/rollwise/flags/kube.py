"""The Kubernetes controller's part: write a FlagSet into its ConfigMap by server-side apply,
owned by the FlagSet (deleting the FlagSet deletes the ConfigMap). Pods mount the ConfigMap as a
directory (`configmap.mount`), so the kubelet updates the file in running pods (within its sync
period, about a minute by default) and the flagd provider re-reads it: no rollout, no restart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import ConfigMap

from rollwise.flags.configmap import configmap
from rollwise.spec.flags import FlagSet


def desired(flagset: Mapping[str, Any]) -> dict[str, Any]:
    """The ConfigMap for a FlagSet object as the API server returns it (with uid and namespace)."""
    meta = dict(flagset.get("metadata") or {})
    fs = FlagSet.model_validate(
        {
            "apiVersion": flagset.get("apiVersion"),
            "kind": "FlagSet",
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "spec": flagset["spec"],
        }
    )
    cm = configmap(fs)
    if meta.get("uid"):
        cm["metadata"]["ownerReferences"] = [
            {
                "apiVersion": str(flagset.get("apiVersion")),
                "kind": "FlagSet",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
    return cm


async def apply_flagset(client: AsyncClient, flagset: Mapping[str, Any], field_manager: str) -> ConfigMap:
    cm = desired(flagset)
    meta = cm["metadata"]
    obj = ConfigMap(
        metadata=ObjectMeta(
            name=meta["name"],
            namespace=meta["namespace"],
            labels=meta["labels"],
            ownerReferences=[OwnerReference(**ref) for ref in meta.get("ownerReferences", [])] or None,
        ),
        data=cm["data"],
    )
    applied: ConfigMap = await client.apply(obj, field_manager=field_manager, force=True)
    return applied
