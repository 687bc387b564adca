"""The generated CRDs are what an API server would accept, and agree with the models."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rollwise.lint import expand
from rollwise.spec import KINDS
from rollwise.spec.crd import all_crds, structural_problems
from rollwise.spec.loader import load_file

ROOT = Path(__file__).resolve().parent.parent
CRDS = {c["spec"]["names"]["kind"]: c for c in all_crds()}


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def as_strict_jsonschema(node: Any) -> Any:
    """OpenAPI v3 as Kubernetes reads it, in JSON Schema draft 4 terms: `nullable` becomes a null
    type, and an object with known properties rejects unknown ones (the API server would prune
    them silently, which for a user is just as wrong)."""
    if isinstance(node, list):
        return [as_strict_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_strict_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def test_every_kind_has_a_crd() -> None:
    assert set(CRDS) == set(KINDS)


@pytest.mark.parametrize("version", ["1.27", "1.31", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_passes_kubernetes_validate_strict(kind: str, version: str) -> None:
    kubernetes_validate.validate(CRDS[kind], version, strict=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural(kind: str) -> None:
    assert structural_problems(schema_of(kind)) == []
    keys: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema_of(kind))
    assert not keys & {"$ref", "$defs", "definitions", "title", "const"}


def test_structural_check_catches_violations() -> None:
    """The structural check must be able to fail, or its passing means nothing."""
    bad = copy.deepcopy(schema_of("Rollout"))
    spec = bad["properties"]["spec"]["properties"]
    del spec["replicas"]["type"]
    spec["paused"] = {"$ref": "#/definitions/x"}
    spec["selector"]["additionalProperties"] = {"type": "string"}
    spec["strategy"]["anyOf"] = [{"type": "object"}]
    problems = structural_problems(bad)
    assert any(p.startswith(".spec.replicas: no type") for p in problems)
    assert any(p.startswith(".spec.paused: $ref") for p in problems)
    assert any(p.startswith(".spec.selector: properties and additionalProperties") for p in problems)
    assert any(p.startswith(".spec.strategy.anyOf[0]: type") for p in problems)


def test_rollout_crd_has_status_and_scale_subresources() -> None:
    version = CRDS["Rollout"]["spec"]["versions"][0]
    assert version["subresources"]["status"] == {}
    scale = version["subresources"]["scale"]
    schema = schema_of("Rollout")["properties"]
    assert scale["specReplicasPath"] == ".spec.replicas"
    assert schema["spec"]["properties"]["replicas"]["type"] == "integer"
    assert schema["status"]["properties"]["replicas"]["type"] == "integer"
    assert schema["status"]["properties"]["selector"]["type"] == "string"
    assert scale["labelSelectorPath"] == ".status.selector"
    assert "status" in CRDS["AnalysisRun"]["spec"]["versions"][0]["subresources"]


def test_defaults_come_from_the_models() -> None:
    canary = schema_of("Rollout")["properties"]["spec"]["properties"]["strategy"]["properties"]["canary"]
    assert canary["properties"]["maxSurge"]["default"] == "25%"
    assert canary["properties"]["maxUnavailable"]["default"] == 0
    assert canary["properties"]["abort"]["properties"]["mode"]["default"] == "instant"
    spec = schema_of("Rollout")["properties"]["spec"]["properties"]
    assert spec["progressDeadlineSeconds"]["default"] == 600
    assert spec["revisionHistoryLimit"]["default"] == 10


def test_int_or_string_fields_are_marked() -> None:
    rolling = schema_of("Rollout")["properties"]["spec"]["properties"]["strategy"]["properties"]["rollingUpdate"]
    surge = rolling["properties"]["maxSurge"]
    assert surge["x-kubernetes-int-or-string"] is True
    assert "type" not in surge


def test_open_fields_preserve_unknown_fields_and_nothing_else_does() -> None:
    open_paths: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("x-kubernetes-preserve-unknown-fields"):
            open_paths.append(path)
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}.*")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    for kind in KINDS:
        walk(schema_of(kind), kind)
    assert sorted(open_paths) == sorted(
        [
            "Rollout.spec.template.spec",
            "Rollout.status.engine",
            "AnalysisTemplate.spec.metrics[].provider.job.spec",
            "ClusterAnalysisTemplate.spec.metrics[].provider.job.spec",
            "AnalysisRun.spec.metrics[].provider.job.spec",
            "FlagSet.spec.flags.*.variants.*",
            "FlagSet.spec.flags.*.targeting",
            "FlagSet.spec.flags.*.metadata.*",
            "FlagSet.spec.$evaluators.*",
        ]
    )


def _example_documents() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for path in expand([ROOT / "examples"]):
        loaded, _ = load_file(path)
        for item in loaded:
            out.append((str(path.relative_to(ROOT)), item.document.index, item.document.data))
    return out


EXAMPLES = _example_documents()


def test_there_are_examples_for_every_strategy() -> None:
    rollouts = [data for _, _, data in EXAMPLES if data["kind"] == "Rollout"]
    strategies = {next(iter(r["spec"]["strategy"])) for r in rollouts}
    assert strategies == {"recreate", "rollingUpdate", "blueGreen", "canary", "shadow", "abTest"}
    assert any(d["kind"] == "FlagSet" for _, _, d in EXAMPLES)


@pytest.mark.parametrize(("file", "index", "data"), EXAMPLES, ids=[f"{f}#{i}" for f, i, _ in EXAMPLES])
def test_examples_validate_against_generated_schema(file: str, index: int, data: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(as_strict_jsonschema(schema_of(data["kind"])))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_schema_rejects_what_the_models_reject() -> None:
    """The schema and the models must agree on a bad spec, or one of them is wrong."""
    bad = {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "x"},
        "spec": {
            "process": {"command": ["app"]},
            "strategy": {"canary": {"steps": [{"setWeight": 140}], "maxSurge": "150%", "abort": {"mode": "fast"}}},
        },
    }
    validator = jsonschema.Draft4Validator(as_strict_jsonschema(schema_of("Rollout")))
    paths = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad))
    assert paths == ["spec.strategy.canary.abort.mode", "spec.strategy.canary.steps.0.setWeight"]
    # A percentage over 100% is beyond what a pattern says; the models catch it.
    with pytest.raises(Exception, match="between 0% and 100%"):
        KINDS["Rollout"].model_validate(bad)


def test_crds_command_prints_every_crd() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rollwise.cli", "crds"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    docs = list(yaml.safe_load_all(out))
    assert [d["metadata"]["name"] for d in docs] == [c["metadata"]["name"] for c in all_crds()]
