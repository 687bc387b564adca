"""The Kubernetes side: a FlagSet becomes the ConfigMap `<name>-flags` with the flagd document
under `flags.json`; a pod mounts it as a directory (not with subPath, which the kubelet never
updates), so a flag change reaches running pods without a restart."""

from __future__ import annotations

from typing import Any

from rollwise.flags.document import dumps, render
from rollwise.spec.flags import FlagSet
from rollwise.spec.rollout import FeatureFlagsRef

KEY = "flags.json"
VOLUME = "rollwise-flags"


def configmap_name(flagset: str) -> str:
    return f"{flagset}-flags"


def configmap(fs: FlagSet, namespace: str | None = None) -> dict[str, Any]:
    meta = fs.metadata
    ns = namespace or meta.namespace or "default"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(meta.name),
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "rollwise", "rollwise.dev/flagset": meta.name},
        },
        "data": {KEY: dumps(render(fs))},
    }


def mount(pod_spec: dict[str, Any], ref: FeatureFlagsRef) -> dict[str, Any]:
    """A copy of the pod spec whose containers see the document at `<mountPath>/flags.json`, its
    path in `ref.fileEnv`. The ConfigMap is not hashed into the revision: changing a flag must not
    roll the pods."""
    spec = dict(pod_spec)
    volume = {"name": VOLUME, "configMap": {"name": configmap_name(ref.flag_set)}}
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") != VOLUME] + [volume]
    path = f"{ref.mount_path.rstrip('/')}/{KEY}"
    containers = []
    for container in spec.get("containers") or []:
        c = dict(container)
        c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if m.get("name") != VOLUME] + [
            {"name": VOLUME, "mountPath": ref.mount_path, "readOnly": True}
        ]
        c["env"] = [e for e in c.get("env") or [] if e.get("name") != ref.file_env] + [
            {"name": ref.file_env, "value": path}
        ]
        containers.append(c)
    spec["containers"] = containers
    return spec
