"""The documents `get`, `status` and `history` show, built from a Rollout read from a cluster in
the same shapes the local control plane serves (docs/local-api.md), so both platforms print alike."""

from __future__ import annotations

from typing import Any

from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Event

from rollwise.cli.kube_client import REVISION_LABEL, ROLLOUT_LABEL, AnalysisRun, Cluster, as_dict

STRATEGIES = ("recreate", "rollingUpdate", "blueGreen", "canary", "shadow", "abTest")


def strategy_name(spec: dict[str, Any]) -> str:
    strategy = spec.get("strategy") or {}
    return next((k for k in STRATEGIES if strategy.get(k) is not None), next(iter(strategy), "-"))


def steps_count(spec: dict[str, Any], stage: str | None) -> int:
    strategy = spec.get("strategy") or {}
    if strategy.get("canary") is not None:
        return len(strategy["canary"].get("steps") or [])
    if strategy.get("shadow") is not None and stage == "promotionSteps":
        return len(((strategy["shadow"].get("promotion") or {}).get("steps")) or [])
    return 0


def summary(obj: dict[str, Any]) -> dict[str, Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace"),
        "strategy": strategy_name(spec),
        "phase": status.get("phase"),
        "message": status.get("message"),
        "step": status.get("currentStepIndex"),
        "steps": steps_count(spec, status.get("stage")),
        "stableRevision": status.get("stableRevision"),
        "currentRevision": status.get("currentRevision"),
        "weights": {w["revision"]: w["weight"] for w in status.get("weights") or []},
        "replicas": spec.get("replicas", 1),
        "readyReplicas": status.get("readyReplicas", 0),
        "endpoints": status.get("endpoints") or {},
    }


def events(cluster: Cluster, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The rollout's core Events, oldest first, as the local API shows them."""
    with cluster.errors():
        items = list(
            cluster.client.list(
                Event,
                namespace=cluster.namespace,
                fields={"involvedObject.kind": "Rollout", "involvedObject.name": name},
            )
        )
    out = []
    for e in items:
        ts = (
            e.lastTimestamp or e.eventTime or e.firstTimestamp or (e.metadata.creationTimestamp if e.metadata else None)
        )
        out.append(
            {
                "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else "",
                "type": e.type or "Normal",
                "reason": e.reason or "",
                "message": e.message or "",
            }
        )
    out.sort(key=lambda e: e["ts"])
    return out[-limit:]


def analysis(cluster: Cluster, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs the engine recorded, with their metrics when the run is an AnalysisRun object."""
    records = (obj.get("status") or {}).get("analysisRuns") or []
    if not records:
        return []
    with cluster.errors():
        runs = {
            str(r["metadata"]["name"]): r
            for r in map(as_dict, cluster.client.list(AnalysisRun, namespace=cluster.namespace))
        }
    out = []
    for rec in records:
        run_status = (runs.get(rec["name"]) or {}).get("status") or {}
        out.append(
            {
                "run": rec["name"],
                "kind": rec.get("kind"),
                "revision": rec.get("revision"),
                "phase": run_status.get("phase") or rec.get("verdict") or "Pending",
                "message": run_status.get("message"),
                "metrics": run_status.get("metricResults") or [],
            }
        )
    return out


def details(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = cluster.rollout(name)
    return {
        "summary": summary(obj),
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
        "analysis": analysis(cluster, obj),
        "events": events(cluster, name),
    }


def history(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    """The engine's revision history with each revision's containers, from its ReplicaSet."""
    obj = cluster.rollout(name)
    status = obj.get("status") or {}
    with cluster.errors():
        sets = cluster.client.list(ReplicaSet, namespace=cluster.namespace, labels={ROLLOUT_LABEL: name})
        templates = {}
        for rs in sets:
            labels = (rs.metadata.labels if rs.metadata else None) or {}
            if REVISION_LABEL in labels and rs.spec is not None and rs.spec.template is not None:
                templates[labels[REVISION_LABEL]] = rs.spec.template.to_dict()
    return [
        {
            "number": h["number"],
            "revision": h["revision"],
            "createdAt": h.get("createdAt"),
            "current": h["revision"] == status.get("currentRevision"),
            "stable": h["revision"] == status.get("stableRevision"),
            "template": templates.get(h["revision"]),
        }
        for h in sorted(status.get("history") or [], key=lambda h: int(h["number"]))
    ]


def describe_template(template: dict[str, Any] | None) -> str:
    if not template:
        return "(no ReplicaSet)"
    containers = (template.get("spec") or {}).get("containers") or []
    return ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers)
