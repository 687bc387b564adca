"""The objects that install Rollwise's controller in a cluster: the CRDs, a Namespace, a
ServiceAccount with least-privilege RBAC, and the controller's Deployment.

`rollwise install --print` emits them as one YAML stream; `rollwise install --write deploy/` writes
the same objects as a kustomize base (deploy/ in the repository is generated this way, and a test
keeps the two equal). The RBAC rules are a table here, not a template, so that the RBAC test can
compare them with the requests the controller makes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollwise import __version__
from rollwise.spec.crd import all_crds

DEFAULT_NAMESPACE = "rollwise-system"
DEFAULT_IMAGE = f"rollwise:{__version__}"
NAME = "rollwise-controller"
PART_OF = {"app.kubernetes.io/part-of": "rollwise"}
SELECTOR = {"app.kubernetes.io/name": NAME}
LABELS = {**SELECTOR, **PART_OF, "app.kubernetes.io/version": __version__}

# Where the controller serves its probes and metrics (`rollwise controller run`'s defaults).
HEALTH_PORT = 8080
HEALTH_PATH = "/healthz"
METRICS_PORT = 9090
METRICS_PATH = "/metrics"
# The Lease the controller replicas elect their leader with, in the controller's own namespace.
LEASE_NAME = NAME


@dataclass(frozen=True)
class Rule:
    """One RBAC rule: verbs on resources ("plural" or "plural/subresource") of one API group."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"apiGroups": [self.group], "resources": list(self.resources), "verbs": list(self.verbs)}


READ = ("get", "list", "watch")

# What the controller does, cluster-wide, and nothing more. tests/kube/test_rbac.py compares this
# table with the requests the controller makes in the controller tests: every request must be
# granted, and every grant used (or listed there with the code that needs it). A server-side apply
# that creates its object also needs `create`.
CLUSTER_RULES: tuple[Rule, ...] = (
    # Its own resources: kopf lists and watches Rollouts; the reconciler reads one, removes the
    # handled command annotation (patch) and writes the status.
    Rule("rollwise.dev", ("rollouts",), (*READ, "patch")),
    Rule("rollwise.dev", ("rollouts/status",), ("patch",)),
    Rule("rollwise.dev", ("analysistemplates", "clusteranalysistemplates"), ("get",)),
    # FlagSets: kopf lists and watches them (each is written into its ConfigMap); a rollout's
    # reconcile reads the one it names for its `env` values.
    Rule("rollwise.dev", ("flagsets",), READ),
    # One ReplicaSet per revision: applied (created, scaled), deleted past the history limit.
    Rule("apps", ("replicasets",), ("list", "watch", "create", "patch", "delete")),
    # workloadRef: the pod template comes from a Deployment (watched, so that an edit is a
    # revision), which is scaled down once the rollout has taken over (scaleDown).
    Rule("apps", ("deployments",), (*READ, "patch")),
    # Stable/canary/preview Services: their selector is switched to a revision; watched, so that
    # someone else's edit of a selector is put back at once.
    Rule("", ("services",), (*READ, "patch")),
    # ConfigMaps and Secrets a pod template refers to are part of its revision; analysis reads
    # Secrets for provider credentials. A FlagSet's ConfigMap is applied (created, then patched).
    Rule("", ("configmaps",), (*READ, "create", "patch")),
    Rule("", ("secrets",), READ),
    Rule("", ("events",), ("create",)),
    # Routers: Istio and Gateway API objects are read and updated (never created); the NGINX
    # router owns a canary Ingress beside the user's. All watched: someone else's edit wakes the
    # rollouts routing through them, whose reconcile writes their routes back.
    Rule("networking.istio.io", ("virtualservices", "destinationrules"), (*READ, "update")),
    Rule("gateway.networking.k8s.io", ("httproutes",), (*READ, "update")),
    Rule("networking.k8s.io", ("ingresses",), (*READ, "create", "patch", "delete")),
    # The job analysis provider: one Job per measurement, followed by a watch, deleted on timeout.
    Rule("batch", ("jobs",), ("create", "watch", "delete")),
)

# Leader election, in the controller's own namespace only.
NAMESPACE_RULES: tuple[Rule, ...] = (Rule("coordination.k8s.io", ("leases",), ("get", "create", "update")),)


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(LABELS)
    return meta


def namespace_object(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(PART_OF)}}


def service_account(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)}


def cluster_role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(NAME),
        "rules": [r.as_dict() for r in CLUSTER_RULES],
    }


def cluster_role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(NAME),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }


def role(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(NAME, namespace),
        "rules": [r.as_dict() for r in NAMESPACE_RULES],
    }


def role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(NAME, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }


def deployment(namespace: str, image: str, prometheus_url: str = "") -> dict[str, Any]:
    probe = {"httpGet": {"path": HEALTH_PATH, "port": "health"}, "periodSeconds": 10, "timeoutSeconds": 5}
    container = {
        "name": "controller",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["rollwise", "controller", "run"],
        "args": [f"--health-port={HEALTH_PORT}", f"--metrics-port={METRICS_PORT}", f"--lease={LEASE_NAME}"]
        # Where the routers' request metrics are: builtin metrics, dynamic canaries and A/B winners
        # are judged from them (docs/kubernetes.md, "Traffic figures per revision").
        + ([f"--prometheus-url={prometheus_url}"] if prometheus_url else []),
        "env": [
            # The leader-election identity and the Lease's namespace.
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 30},
        "livenessProbe": {**probe, "failureThreshold": 3},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 2},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {
                    "labels": dict(LABELS),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": METRICS_PATH,
                    },
                },
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


@dataclass(frozen=True)
class Manifest:
    """One file of the kustomize base and the objects in it."""

    path: str
    objects: tuple[dict[str, Any], ...]


def manifests(
    namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE, prometheus_url: str = ""
) -> list[Manifest]:
    """Every object of an install, grouped by file, in the order they must be applied."""
    crds = [Manifest(f"crds/{c['metadata']['name']}.yaml", (c,)) for c in all_crds()]
    return [
        *crds,
        Manifest("namespace.yaml", (namespace_object(namespace),)),
        Manifest("serviceaccount.yaml", (service_account(namespace),)),
        Manifest(
            "rbac.yaml", (cluster_role(), cluster_role_binding(namespace), role(namespace), role_binding(namespace))
        ),
        Manifest("deployment.yaml", (deployment(namespace, image, prometheus_url),)),
    ]


def objects(
    namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE, prometheus_url: str = ""
) -> list[dict[str, Any]]:
    return [obj for m in manifests(namespace, image, prometheus_url) for obj in m.objects]


def dump(objs: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    return yaml.safe_dump_all(list(objs), sort_keys=False, width=120)


HEADER = (
    "# Generated by `rollwise install --write DIR`; do not edit: change\n"
    "# src/rollwise/platforms/kubernetes/install.py, then run `rollwise install --write deploy/`.\n"
)


def kustomize_files(
    namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE, prometheus_url: str = ""
) -> dict[str, str]:
    """The kustomize base: relative path -> file content."""
    files = {m.path: HEADER + dump(m.objects) for m in manifests(namespace, image, prometheus_url)}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    files["kustomization.yaml"] = HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def write(
    directory: Path, namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE, prometheus_url: str = ""
) -> list[Path]:
    """Write the kustomize base into `directory`, removing YAML files a former version wrote there
    that this one no longer does (so the base never keeps a stale object)."""
    files = kustomize_files(namespace, image, prometheus_url)
    written: list[Path] = []
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in sorted(directory.rglob("*.yaml")):
        if stale.relative_to(directory).as_posix() not in files and stale.read_text(encoding="utf-8").startswith(
            "# Generated by `rollwise install"
        ):
            stale.unlink()
    return written
