"""Checks shared by the router tests: every object a router sent, validated against the upstream CRD
schema (jsonschema, plus no field the schema does not declare: a real server would prune it
silently, plus the schema's CEL rules, `x-kubernetes-validations`, evaluated with cel-python on
the object as the server defaults it) or, for built-in kinds, against Kubernetes' own schema in
strict mode."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate

from rollwise.testing.kubeapi import ApiServer, load_crd_file
from rollwise.testing.kubeapi.schema import Validator, apply_defaults, prune
from rollwise.testing.kubeapi.util import json_copy

CRD_FILES = {
    "virtualservices": "networking.istio.io_virtualservices.yaml",
    "destinationrules": "networking.istio.io_destinationrules.yaml",
    "httproutes": "gateway.networking.k8s.io_httproutes.yaml",
}
WRITES = ("POST", "PUT", "PATCH")


def sent(api: ApiServer, plural: str) -> list[dict[str, Any]]:
    """The bodies of every write of `plural` the server received, in order."""
    out = []
    for r in api._requests:  # kmock keeps every request it served here
        if r.method in WRITES and r.resource is not None and r.resource.plural == plural and r.subresource is None:
            assert isinstance(r.data, dict), r.text
            out.append(r.data)
    return out


def schema_of(shared: Path, plural: str, version: str) -> dict[str, Any]:
    (crd,) = load_crd_file(shared / CRD_FILES[plural])
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: dict[str, Any] = v["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no version {version} of {plural}")


def check_custom(shared: Path, plural: str, obj: dict[str, Any]) -> None:
    version = obj["apiVersion"].split("/")[-1]
    schema = schema_of(shared, plural, version)
    _, dropped = prune(obj, schema)
    assert not dropped, f"{plural} written with fields its schema does not declare: {dropped}"
    problems = list(Validator(schema).errors(obj))
    assert not problems, f"{plural} written against its schema: {problems}"
    failed = cel_failures(schema, apply_defaults(json_copy(obj), schema))
    assert not failed, f"{plural} written against its CEL rules: {failed}"


_CEL = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


@cache
def _holds(rule: str, value: str) -> bool:
    # Memoised on the value's JSON: a sequence of writes repeats most of its parts.
    result = _program(rule).evaluate({"self": celpy.json_to_cel(json.loads(value))})
    return result is True or (isinstance(result, celpy.celtypes.BoolType) and bool(result))


def cel_failures(schema: dict[str, Any], obj: Any) -> list[str]:
    """Each CEL rule of the schema that `obj` breaks, as "path: message". Transition rules
    (oldSelf) have no old object to compare with here and are skipped."""
    out: list[str] = []
    _cel_node(schema, obj, "", out)
    return out


def _cel_node(node: dict[str, Any], value: Any, path: str, out: list[str]) -> None:
    for rule in node.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue
        if not _holds(rule["rule"], json.dumps(value, sort_keys=True)):
            out.append(f"{path or '.'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        props = node.get("properties") or {}
        for key, sub in value.items():
            if key in props:
                _cel_node(props[key], sub, f"{path}.{key}", out)
            elif isinstance(node.get("additionalProperties"), dict):
                _cel_node(node["additionalProperties"], sub, f"{path}.{key}", out)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            _cel_node(node["items"], item, f"{path}[{i}]", out)


def check_all_custom(api: ApiServer, shared: Path, plural: str) -> int:
    bodies = sent(api, plural)
    for body in bodies:
        check_custom(shared, plural, body)
    return len(bodies)


def check_builtin(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.33", strict=True)


def spec_of(api: ApiServer, api_version: str, kind: str, name: str, namespace: str = "default") -> Any:
    obj = api.get_object(api_version, kind, namespace, name)
    assert obj is not None, f"{kind} {name} is gone"
    return obj["spec"]
