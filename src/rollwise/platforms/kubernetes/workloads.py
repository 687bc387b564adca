"""Revisions as ReplicaSets: where the pod template comes from (the Rollout, or a Deployment named
by `workloadRef`), the config it references hashed into the revision, the immutable ReplicaSet of
each revision, and what the ReplicaSets' status says about their pods (the engine's `Observed`)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Secret
from pydantic import ValidationError

from rollwise.engine import Observed, RevisionObserved
from rollwise.engine.revision import referenced_config
from rollwise.platforms.kubernetes import flagsets
from rollwise.platforms.kubernetes.names import API_VERSION, REVISION_LABEL, ROLLOUT_LABEL, replicaset_name
from rollwise.spec.rollout import Rollout
from rollwise.spec.workload import PodTemplate

ABSENT = "absent"


class WorkloadError(Exception):
    """The workload cannot be read (a workloadRef naming no Deployment); one line for an event."""


@dataclass(frozen=True)
class Workload:
    """The pod template a new revision runs, and the content hashes that make part of its name."""

    template: dict[str, Any]
    config_hashes: Mapping[str, str]
    deployment: dict[str, Any] | None = None  # the workloadRef's Deployment, as read


def content_hash(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


async def read_workload(client: AsyncClient, rollout: Rollout) -> Workload:
    namespace = rollout.metadata.namespace or "default"
    spec = rollout.spec
    deployment: dict[str, Any] | None = None
    hashes: dict[str, str] = {}
    if spec.template is not None:
        template = spec.template.to_dict()
        pod = spec
    elif spec.workload_ref is not None:
        ref = spec.workload_ref
        try:
            deployment = (await client.get(Deployment, ref.name, namespace=namespace)).to_dict()
        except ApiError as exc:
            if exc.status.code == 404:
                raise WorkloadError(f"workloadRef: Deployment {namespace}/{ref.name} not found") from None
            raise
        template = copy.deepcopy((deployment.get("spec") or {}).get("template") or {})
        # The Deployment's template is the workload: changing it starts a rollout, as a change of
        # spec.template would.
        hashes[f"Deployment/{ref.name}"] = content_hash(template)
        pod = spec.model_copy(update={"template": PodTemplate.model_validate(template), "workload_ref": None})
    else:
        raise WorkloadError("the Kubernetes platform runs spec.template or spec.workloadRef, not spec.process")
    for ref_name in sorted(referenced_config(pod)):
        hashes[ref_name] = await _config_hash(client, namespace, ref_name)
    flags = spec.feature_flags
    if flags is not None:
        # Read after the referenced config: the FlagSet's ConfigMap is mounted only into the
        # ReplicaSet's template, so its content (which changes in place) is never hashed.
        try:
            env = await flagsets.read_env(client, namespace, flags.flag_set)
        except ValidationError as exc:
            first = " ".join(str(exc).splitlines()[:3])
            raise WorkloadError(f"featureFlags: FlagSet {namespace}/{flags.flag_set} is not valid: {first}") from None
        hashes[flagsets.reference(flags.flag_set)] = flagsets.config_hash(flags, env)
        template = flagsets.wire(template, flags, env)
    return Workload(template=template, config_hashes=hashes, deployment=deployment)


async def _config_hash(client: AsyncClient, namespace: str, ref: str) -> str:
    kind, _, name = ref.partition("/")
    try:
        if kind == "ConfigMap":
            obj = (await client.get(ConfigMap, name, namespace=namespace)).to_dict()
        else:
            obj = (await client.get(Secret, name, namespace=namespace)).to_dict()
    except ApiError as exc:
        if exc.status.code == 404:
            return ABSENT  # pods would not start; once it appears, its content makes a new revision
        raise
    return content_hash({"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}})


def pod_selector(rollout: Rollout) -> dict[str, str]:
    selector = rollout.spec.selector
    return dict(selector.match_labels or {}) if selector is not None else {}


def replicaset_manifest(
    rollout: Rollout, uid: str, revision: str, template: Mapping[str, Any], replicas: int
) -> dict[str, Any]:
    """The immutable ReplicaSet of one revision: the rollout's pod template plus the revision and
    rollout labels, selecting only its own pods, owned by the Rollout."""
    name = rollout.metadata.name
    labels = {ROLLOUT_LABEL: name, REVISION_LABEL: revision}
    pod_template = copy.deepcopy(dict(template))
    meta = pod_template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    selector = rollout.spec.selector
    match: dict[str, Any] = {"matchLabels": {**pod_selector(rollout), REVISION_LABEL: revision}}
    if selector is not None and selector.match_expressions:
        match["matchExpressions"] = [e.to_dict() for e in selector.match_expressions]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replicaset_name(name, revision),
            "namespace": rollout.metadata.namespace or "default",
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Rollout",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": rollout.spec.min_ready_seconds,
            "selector": match,
            "template": pod_template,
        },
    }


@dataclass(frozen=True)
class RevisionSet:
    """One revision's ReplicaSet as read."""

    name: str
    revision: str
    replicas: int
    status_replicas: int
    ready: int
    available: int
    observed_generation_current: bool
    resource_version: str | None = None


async def list_revisions(client: AsyncClient, namespace: str, rollout: str, uid: str) -> dict[str, RevisionSet]:
    out: dict[str, RevisionSet] = {}
    async for rs in client.list(ReplicaSet, namespace=namespace, labels={ROLLOUT_LABEL: rollout}):
        meta = rs.metadata
        if meta is None or meta.labels is None or REVISION_LABEL not in meta.labels:
            continue
        if not any(o.uid == uid and o.controller for o in meta.ownerReferences or []):
            continue  # not ours: a same-named rollout deleted and created again, or a user's copy
        status = rs.status
        spec_replicas = (rs.spec.replicas if rs.spec is not None else None) or 0
        out[meta.labels[REVISION_LABEL]] = RevisionSet(
            name=meta.name or "",
            revision=meta.labels[REVISION_LABEL],
            replicas=spec_replicas,
            status_replicas=(status.replicas if status else 0) or 0,
            ready=(status.readyReplicas if status else 0) or 0,
            available=(status.availableReplicas if status else 0) or 0,
            observed_generation_current=status is not None
            and (status.observedGeneration or 0) >= (meta.generation or 0),
            resource_version=meta.resourceVersion,
        )
    return out


def observed(revisions: Mapping[str, RevisionSet], config_hashes: Mapping[str, str]) -> Observed:
    return Observed(
        revisions={
            rev: RevisionObserved(
                desired=rs.replicas,
                ready=min(rs.ready, rs.replicas) if rs.replicas else 0,
                available=min(rs.available, rs.replicas) if rs.replicas else 0,
                # Pods present in any state, as the ReplicaSet controller counts them; while it has
                # not yet seen a scale-down, the old count still stands.
                existing=max(rs.status_replicas, rs.replicas if not rs.observed_generation_current else 0),
            )
            for rev, rs in revisions.items()
        },
        config_hashes=dict(config_hashes),
    )
