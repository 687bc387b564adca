"""The resources the emulated server serves: built-in kinds and CustomResourceDefinitions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rollwise.testing.kubeapi.schema import BuiltinView, SchemaView, Validator, View


@dataclass(frozen=True)
class Scale:
    """Where the scale subresource reads and writes (JSON paths like `.spec.replicas`)."""

    spec_replicas: str
    status_replicas: str
    label_selector: str | None = None
    selector_is_object: bool = False  # built-in kinds keep a LabelSelector object at spec.selector


@dataclass
class Version:
    name: str
    served: bool = True
    storage: bool = False
    status: bool = False
    scale: Scale | None = None
    schema: dict[str, Any] | None = None
    _validator: Validator | None = field(default=None, repr=False)

    def view(self) -> View:
        return SchemaView(self.schema, root=True) if self.schema is not None else BuiltinView()

    def validator(self) -> Validator | None:
        if self.schema is None:
            return None
        if self._validator is None:
            self._validator = Validator(self.schema)
        return self._validator


@dataclass
class Resource:
    group: str
    plural: str
    kind: str
    namespaced: bool
    versions: list[Version]
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    builtin: bool = True
    crd: str | None = None  # the CRD's name, for custom resources

    @property
    def key(self) -> tuple[str, str]:
        return self.group, self.plural

    @property
    def storage(self) -> Version:
        for v in self.versions:
            if v.storage:
                return v
        return self.versions[0]

    def served(self, version: str) -> Version | None:
        for v in self.versions:
            if v.name == version and v.served:
                return v
        return None

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(name: str) -> tuple[int, int, int, str]:
    """Sort key: GA before beta before alpha, higher numbers first, then non-conforming by name."""
    m = _VERSION.match(name)
    if not m:
        return (3, 0, 0, name)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, name)


def _b(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    status: bool = False,
    scale: Scale | None = None,
    short: tuple[str, ...] = (),
) -> Resource:
    return Resource(
        group,
        plural,
        kind,
        namespaced,
        [Version(version, storage=True, status=status, scale=scale)],
        singular=kind.lower(),
        short_names=short,
        categories=("all",) if plural in ("pods", "services", "deployments", "replicasets", "statefulsets") else (),
    )


_REPLICAS = Scale(".spec.replicas", ".status.replicas", ".spec.selector", selector_is_object=True)


def builtin_resources() -> list[Resource]:
    return [
        _b("", "v1", "namespaces", "Namespace", namespaced=False, status=True, short=("ns",)),
        _b("", "v1", "pods", "Pod", status=True, short=("po",)),
        _b("", "v1", "services", "Service", status=True, short=("svc",)),
        _b("", "v1", "configmaps", "ConfigMap", short=("cm",)),
        _b("", "v1", "secrets", "Secret"),
        _b("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
        _b("", "v1", "events", "Event", short=("ev",)),
        _b("", "v1", "endpoints", "Endpoints", short=("ep",)),
        _b("", "v1", "nodes", "Node", namespaced=False, status=True, short=("no",)),
        _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status=True, short=("pvc",)),
        _b("apps", "v1", "deployments", "Deployment", status=True, scale=_REPLICAS, short=("deploy",)),
        _b("apps", "v1", "replicasets", "ReplicaSet", status=True, scale=_REPLICAS, short=("rs",)),
        _b("apps", "v1", "statefulsets", "StatefulSet", status=True, scale=_REPLICAS, short=("sts",)),
        _b("apps", "v1", "daemonsets", "DaemonSet", status=True, short=("ds",)),
        _b("apps", "v1", "controllerrevisions", "ControllerRevision"),
        _b("batch", "v1", "jobs", "Job", status=True),
        _b("batch", "v1", "cronjobs", "CronJob", status=True, short=("cj",)),
        _b("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", status=True, short=("hpa",)),
        _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", status=True, short=("pdb",)),
        _b("coordination.k8s.io", "v1", "leases", "Lease"),
        _b("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        _b("events.k8s.io", "v1", "events", "Event", short=("ev",)),
        _b("networking.k8s.io", "v1", "ingresses", "Ingress", status=True, short=("ing",)),
        _b("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
        _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
        _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        _b(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            status=True,
            short=("crd", "crds"),
        ),
    ]


def from_crd(crd: dict[str, Any]) -> Resource:
    spec = crd["spec"]
    names = spec["names"]
    versions = []
    for v in spec["versions"]:
        sub = v.get("subresources") or {}
        scale = sub.get("scale")
        versions.append(
            Version(
                v["name"],
                served=bool(v.get("served", True)),
                storage=bool(v.get("storage", False)),
                status="status" in sub,
                scale=Scale(scale["specReplicasPath"], scale["statusReplicasPath"], scale.get("labelSelectorPath"))
                if isinstance(scale, dict)
                else None,
                schema=(v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"},
            )
        )
    versions.sort(key=lambda v: version_priority(v.name))
    return Resource(
        spec["group"],
        names["plural"],
        names["kind"],
        spec.get("scope", "Namespaced") == "Namespaced",
        versions,
        singular=names.get("singular") or names["kind"].lower(),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        builtin=False,
        crd=crd["metadata"]["name"],
    )


def crd_problems(crd: dict[str, Any]) -> list[tuple[str, str]]:
    """The checks the server makes of a CRD that matter here."""
    problems: list[tuple[str, str]] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural = spec.get("group"), names.get("plural")
    if not group or not plural or not names.get("kind"):
        problems.append(("spec", "group, names.plural and names.kind are required"))
    elif crd.get("metadata", {}).get("name") != f"{plural}.{group}":
        problems.append(("metadata.name", f'must be spec.names.plural+"."+spec.group: "{plural}.{group}"'))
    versions = spec.get("versions") or []
    if not versions:
        problems.append(("spec.versions", "must have at least one version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(("spec.versions", "must have exactly one version marked as storage version"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(("spec.scope", 'supported values: "Cluster", "Namespaced"'))
    return problems
