"""`rollwise install`: the manifests validate against Kubernetes 1.33's schemas, deploy/ is exactly
what `install --write` produces (and holds the objects `install --print` prints), and the stream
applies to an API server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from lightkube import AsyncClient
from lightkube.codecs import load_all_yaml
from lightkube.resources.apps_v1 import Deployment
from typer.testing import CliRunner

from rollwise.cli.app import app
from rollwise.platforms.kubernetes import install
from rollwise.spec.crd import structural_problems
from rollwise.testing.kubeapi import ApiServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def printed(*args: str) -> list[dict[str, Any]]:
    result = run("install", "--print", *args)
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def test_every_object_validates_against_kubernetes_1_33_strictly() -> None:
    objs = printed()
    kinds = [o["kind"] for o in objs]
    assert kinds.count("CustomResourceDefinition") == 5
    for kind in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert kinds.count(kind) == 1, kind
    assert kinds[-1] == "Deployment"
    for obj in objs:
        kubernetes_validate.validate(obj, "1.33", strict=True)
    for crd in by_kind(objs, "CustomResourceDefinition"):
        for version in crd["spec"]["versions"]:
            assert structural_problems(version["schema"]["openAPIV3Schema"]) == []


def test_deploy_directory_is_what_install_write_produces(tmp_path: Path) -> None:
    assert run("install", "--write", str(tmp_path / "base")).exit_code == 0
    expected = tree(tmp_path / "base")
    actual = tree(DEPLOY)
    assert sorted(actual) == sorted(expected), "deploy/ differs: run `rollwise install --write deploy/`"
    for name, text in expected.items():
        assert actual[name] == text, f"deploy/{name} differs: run `rollwise install --write deploy/`"


def test_deploy_kustomization_holds_the_printed_objects_in_order() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    from_base = [
        doc
        for rel in kustomization["resources"]
        for doc in yaml.safe_load_all((DEPLOY / rel).read_text())
        if doc is not None
    ]
    assert from_base == printed()


def test_namespace_and_image_options_reach_every_object() -> None:
    objs = printed("--namespace", "delivery", "--image", "registry.example/rollwise:1.2.3")
    assert by_kind(objs, "Namespace")[0]["metadata"]["name"] == "delivery"
    for obj in objs:
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "Deployment"):
            assert obj["metadata"]["namespace"] == "delivery", obj["kind"]
    for binding in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": install.NAME, "namespace": "delivery"}]
    [container] = by_kind(objs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/rollwise:1.2.3"


def test_controller_deployment_runs_unprivileged_with_probes_and_limits() -> None:
    [dep] = by_kind(printed(), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == install.NAME
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [c] = pod["containers"]
    assert c["command"] == ["rollwise", "controller", "run"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": install.HEALTH_PORT, "metrics": install.METRICS_PORT}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": install.HEALTH_PATH, "port": "health"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])


def test_cluster_role_grants_no_wildcards_and_no_secrets_writes() -> None:
    [role] = by_kind(printed(), "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        if "secrets" in rule["resources"]:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --print and --write"),
        (("--print", "--write", "x"), "exactly one of --print and --write"),
        (("--print", "--namespace", "Not_A_Name"), "not a valid namespace name"),
        (("--print", "--image", "a b"), "not an image reference"),
        (("--print", "--prometheus-url", "prometheus:9090"), "not an http(s) URL"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run("install", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.asyncio
async def test_printed_stream_applies_to_an_api_server(api: ApiServer, client: AsyncClient) -> None:
    result = run("install", "--print", "--namespace", "rw-test")
    assert result.exit_code == 0
    for obj in load_all_yaml(result.stdout):
        await client.apply(obj, force=True)
    dep = await client.get(Deployment, install.NAME, namespace="rw-test")
    assert dep.spec is not None and dep.spec.template.spec is not None
    assert dep.spec.template.spec.serviceAccountName == install.NAME
    crd = api.get_object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "rollouts.rollwise.dev")
    assert crd is not None
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established["Established"] == "True"


def test_controller_image_runs_the_deployment_command_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert stages and all(s == "python:3.11-slim" for s in stages)
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER "))
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so that runAsNonRoot can verify it
    [dep] = by_kind(printed(), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    entrypoint = next(line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT "))
    assert yaml.safe_load(entrypoint.removeprefix("ENTRYPOINT ")) == pod["containers"][0]["command"]
    assert "'.[kubernetes]'" in dockerfile


def test_deployment_flags_are_ones_the_controller_accepts() -> None:
    help_ = run("controller", "run", "--help")
    assert help_.exit_code == 0, help_.output
    [dep] = by_kind(printed("--prometheus-url", "http://prometheus.monitoring:9090"), "Deployment")
    assert (
        "--prometheus-url=http://prometheus.monitoring:9090" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    for arg in dep["spec"]["template"]["spec"]["containers"][0]["args"]:
        flag = arg.split("=", 1)[0]
        assert flag in help_.output, f"`rollwise controller run` has no {flag}"


def test_e2e_script_is_valid_bash() -> None:
    script = ROOT / "hack" / "e2e-kind.sh"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    if shutil.which("shellcheck"):
        linted = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout
