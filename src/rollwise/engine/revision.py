"""Revisions: immutable versions of the workload, named by a content hash of the workload plus
the hashes of the config it references. History numbers them like `kubectl rollout history`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from rollwise.spec.rollout import RolloutSpec

HASH_LENGTH = 10


def workload(spec: RolloutSpec) -> dict[str, Any]:
    """The part of the spec a revision is made of; replicas and strategy are not part of it."""
    if spec.template is not None:
        return {"template": spec.template.to_dict()}
    if spec.process is not None:
        return {"process": spec.process.to_dict()}
    assert spec.workload_ref is not None
    return {"workloadRef": spec.workload_ref.to_dict()}


def revision_name(spec: RolloutSpec, config_hashes: Mapping[str, str]) -> str:
    payload = {"workload": workload(spec), "config": dict(sorted(config_hashes.items()))}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Hex digits only: valid in a label value, a DNS label and a file name, and never a word.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def referenced_config(spec: RolloutSpec) -> set[str]:
    """ConfigMaps and Secrets the pod template reads ("ConfigMap/name", "Secret/name"): a platform
    hashes their data into `Observed.config_hashes`, so that a config change makes a new revision."""
    if spec.template is None:
        return set()
    pod = spec.template.spec
    found: set[str] = set()
    for volume in _dicts(pod.get("volumes")):
        found |= _volume_refs(volume)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(pod.get(key)):
            for source in _dicts(container.get("envFrom")):
                found |= _named(source.get("configMapRef"), "ConfigMap", "name")
                found |= _named(source.get("secretRef"), "Secret", "name")
            for env in _dicts(container.get("env")):
                value_from = env.get("valueFrom")
                if isinstance(value_from, dict):
                    found |= _named(value_from.get("configMapKeyRef"), "ConfigMap", "name")
                    found |= _named(value_from.get("secretKeyRef"), "Secret", "name")
    return found


def _volume_refs(volume: dict[str, Any]) -> set[str]:
    found = _named(volume.get("configMap"), "ConfigMap", "name") | _named(volume.get("secret"), "Secret", "secretName")
    projected = volume.get("projected")
    if isinstance(projected, dict):
        for source in _dicts(projected.get("sources")):
            found |= _named(source.get("configMap"), "ConfigMap", "name")
            found |= _named(source.get("secret"), "Secret", "name")
    return found


def _named(ref: object, kind: str, key: str) -> set[str]:
    if isinstance(ref, dict) and isinstance(ref.get(key), str):
        return {f"{kind}/{ref[key]}"}
    return set()


def _dicts(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))
