"""CustomResourceDefinitions generated from the models, so that defaults and constraints live in
one place. Kubernetes wants *structural* schemas: every node typed (or int-or-string, or
preserve-unknown-fields), no $ref, nullable instead of null unions, no types inside anyOf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from rollwise.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollwise.spec.common import API_GROUP
from rollwise.spec.flags import FlagSet
from rollwise.spec.rollout import Rollout

VERSION = "v1alpha1"

# Keys that say nothing to the API server, or that OpenAPI v3.0 spells differently.
_DROP = {"title", "examples", "$defs"}


@dataclass(frozen=True)
class Kind:
    model: type[BaseModel]
    plural: str
    scope: str
    short_names: tuple[str, ...]
    status: bool
    scale: bool = False
    columns: tuple[tuple[str, str, str], ...] = ()


KINDS: tuple[Kind, ...] = (
    Kind(
        Rollout,
        "rollouts",
        "Namespaced",
        ("rwro",),
        status=True,
        scale=True,
        columns=(
            ("Desired", "integer", ".spec.replicas"),
            ("Ready", "integer", ".status.readyReplicas"),
            ("Phase", "string", ".status.phase"),
            ("Step", "integer", ".status.currentStepIndex"),
            ("Revision", "string", ".status.currentRevision"),
            ("Age", "date", ".metadata.creationTimestamp"),
        ),
    ),
    Kind(AnalysisTemplate, "analysistemplates", "Namespaced", ("rwat",), status=False),
    Kind(ClusterAnalysisTemplate, "clusteranalysistemplates", "Cluster", ("rwcat",), status=False),
    Kind(
        AnalysisRun,
        "analysisruns",
        "Namespaced",
        ("rwar",),
        status=True,
        columns=(("Phase", "string", ".status.phase"), ("Age", "date", ".metadata.creationTimestamp")),
    ),
    Kind(FlagSet, "flagsets", "Namespaced", ("rwfs",), status=False),
)


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema: dict[str, Any] = _convert(raw, defs)
    # The API server owns metadata's schema; a CRD may only say it is an object.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"type": "string"}
    schema["required"] = [r for r in schema.get("required", []) if r not in ("metadata", "apiVersion", "kind")]
    return schema


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_convert(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    branches = node.get("anyOf")
    if branches and not node.get("x-kubernetes-int-or-string"):
        non_null = [b for b in branches if b.get("type") != "null"]
        if len(non_null) == 1 and len(non_null) < len(branches):
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            nullable: dict[str, Any] = {**_convert(non_null[0], defs), **_convert(rest, defs)}
            nullable["nullable"] = True
            return nullable
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "additionalProperties" and value is False:
            continue  # the API server prunes unknown fields; `false` is not allowed in a CRD
        if key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
            continue
        if key == "default" and value is None:
            continue
        if key == "description" and isinstance(value, str):
            out[key] = " ".join(value.split())  # docstrings are wrapped for source, not for kubectl explain
            continue
        out[key] = _convert(value, defs)
    return out


def crd(kind: Kind) -> dict[str, Any]:
    name = kind.model.model_fields["kind"].default
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(kind.model)},
    }
    subresources: dict[str, Any] = {}
    if kind.status:
        subresources["status"] = {}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    if subresources:
        version["subresources"] = subresources
    if kind.columns:
        version["additionalPrinterColumns"] = [{"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "rollwise"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": name,
                "listKind": f"{name}List",
                "plural": kind.plural,
                "singular": name.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["rollwise"],
            },
            "scope": kind.scope,
            "versions": [version],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    return [crd(k) for k in KINDS]


# --- structural schema rules, checked by tests and by `rollwise crds --check` ---------------------

_JUNCTORS = ("anyOf", "allOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = {
    "type",
    "description",
    "default",
    "additionalProperties",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
}


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Violations of Kubernetes' structural-schema rules below `schema`."""
    problems: list[str] = []
    if "$ref" in schema:
        problems.append(f"{path or '.'}: $ref is not allowed")
    typed = (
        "type" in schema
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    )
    if not typed:
        problems.append(f"{path or '.'}: no type (and not int-or-string or preserve-unknown-fields)")
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        problems.append(f"{path or '.'}: properties and additionalProperties together")
    if schema.get("additionalProperties") is False:
        problems.append(f"{path or '.'}: additionalProperties: false")
    int_or_string = [{"type": "integer"}, {"type": "string"}]
    for key in _JUNCTORS:
        if schema.get("x-kubernetes-int-or-string") and key == "anyOf" and schema[key] == int_or_string:
            continue  # the one typed junctor Kubernetes allows
        for i, branch in enumerate(_as_list(schema.get(key))):
            bad = _FORBIDDEN_IN_JUNCTORS & set(_walk_keys(branch))
            if bad:
                problems.append(f"{path}.{key}[{i}]: {', '.join(sorted(bad))} inside a junctor")
    for name, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    return problems


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _walk_keys(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    keys = list(node)
    for sub in node.values():
        if isinstance(sub, dict):
            keys += _walk_keys(sub)
    return keys
