"""The CLI against a cluster (the emulated API server): which platform a verb picks, apply with
lint and server-side apply, the views (get, list, status, history), commands through the
annotation the controller answers, set image/command/env, and the one-line errors.

The CLI runs in a worker thread (typer's CliRunner) or as a subprocess, while the emulator keeps
serving on the test's event loop; it reaches the emulator through a kubeconfig file."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Event, Namespace
from lightkube.types import PatchType
from typer.testing import CliRunner

from rollwise.cli.app import app
from rollwise.cli.errors import CliError
from rollwise.testing.kubeapi import ApiServer
from tests.kube.helpers import Rollout, wait_until

pytestmark = pytest.mark.asyncio

API = "rollwise.dev/v1alpha1"


def write_kubeconfig(api: ApiServer, path: Path, namespace: str | None = None) -> Path:
    context: dict[str, Any] = {"cluster": "emulator", "user": "tester"}
    if namespace is not None:
        context["namespace"] = namespace
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": str(api.url).rstrip("/")}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [{"name": "emu", "context": context}],
                "current-context": "emu",
            }
        )
    )
    return path


class Outcome:
    """What a user sees: the exit status, stdout, and stderr as `rollwise` prints it (a CliError
    becomes its detail lines and one `rollwise: ...` line with status 1, as main() does)."""

    def __init__(self, result: Result) -> None:
        self.code = result.exit_code
        self.out = result.stdout
        self.err = result.stderr
        exc = result.exception
        if isinstance(exc, CliError):
            self.err += "".join(f"{line}\n" for line in exc.details) + f"rollwise: {exc}\n"
        elif exc is not None and not isinstance(exc, SystemExit):
            raise exc

        # Usage errors come in a rich box, wrapped: compare their words.
        self.said = " ".join(re.sub("[│╭╮╰╯─]", " ", self.err).split())

    def __repr__(self) -> str:
        return f"<exit {self.code}\nstdout: {self.out}\nstderr: {self.err}>"


async def cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env, catch_exceptions=True)
    return Outcome(result)


def rollout_doc(name: str = "web", image: str = "example/app:1.0", replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}},
        },
    }


def write_yaml(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


async def make_namespace(client: AsyncClient, name: str) -> None:
    await client.create(Namespace.from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))


def stored(api: ApiServer, kind: str, namespace: str, name: str, api_version: str = API) -> dict[str, Any] | None:
    return api.get_object(api_version, kind, namespace, name)


# --- which platform ------------------------------------------------------------------------------


async def test_platform_rule_and_usage_errors(tmp_path: Path) -> None:
    local = await cli("get", "web", "--platform", "local", "--context", "prod")
    assert local.code == 2 and "--context applies to Kubernetes, not to --platform local" in local.said

    unknown = await cli("get", "web", "--platform", "nomad")
    assert unknown.code == 2 and "must be local or kubernetes" in unknown.said

    missing = tmp_path / "nope"
    kube = await cli("get", "web", "--kubeconfig", str(missing))
    assert kube.code == 1 and f"{missing}: no such kubeconfig file" in kube.err

    # The environment variable picks Kubernetes too; with nothing to connect to, it says so.
    env = {"ROLLWISE_PLATFORM": "kubernetes", "KUBECONFIG": str(missing), "HOME": str(tmp_path)}
    from_env = await cli("list", env=env)
    assert from_env.code == 1 and "no kubeconfig found" in from_env.err

    # Kubernetes-only options are refused locally; local-only verbs are refused on a cluster.
    assert (await cli("set", "image", "web", "app:1.0")).code == 2
    assert (await cli("promote", "web", "--wait", "5")).code == 2
    up = await cli("up", "-n", "team")
    assert up.code == 2 and "no control plane to start or stop on Kubernetes" in up.said


# --- apply ---------------------------------------------------------------------------------------


async def test_apply_lints_then_applies_server_side_in_the_namespace(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await make_namespace(client, "team")
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    template = {
        "apiVersion": API,
        "kind": "AnalysisTemplate",
        "metadata": {"name": "ok"},
        "spec": {
            "metrics": [
                {"name": "m", "successCondition": "result >= 0.99", "provider": {"builtin": {"metric": "success-rate"}}}
            ]
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    # Rollout first in the file: it is applied last, after what it may refer to.
    path = write_yaml(tmp_path / "web.yaml", rollout_doc(), template, service)
    first = await cli("apply", "-f", str(path), "--kubeconfig", str(kc), "-n", "team")
    assert first.code == 0, first
    assert first.out.splitlines() == ["analysistemplate/ok created", "service/web created", "rollout/web created"]
    obj = stored(api, "Rollout", "team", "web")
    assert obj is not None
    managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
    assert ("rollwise-cli", "Apply") in managers
    assert stored(api, "Service", "team", "web", "v1") is not None
    assert stored(api, "Rollout", "default", "web") is None

    again = await cli("apply", "-f", str(path), "--kubeconfig", str(kc), "-n", "team")
    assert again.code == 0 and again.out.splitlines()[-1] == "rollout/web unchanged", again

    write_yaml(path, rollout_doc(image="example/app:2.0"))
    changed = await cli("apply", "-f", str(path), "--kubeconfig", str(kc), "-n", "team")
    assert changed.out.strip() == "rollout/web configured (generation 2)", changed
    obj = stored(api, "Rollout", "team", "web")
    assert obj is not None and obj["spec"]["template"]["spec"]["containers"][0]["image"] == "example/app:2.0"


async def test_apply_refuses_a_file_with_lint_errors_and_applies_nothing(api: ApiServer, tmp_path: Path) -> None:
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    good = write_yaml(tmp_path / "good.yaml", rollout_doc("good"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            apiVersion: rollwise.dev/v1alpha1
            kind: Rollout
            metadata:
              name: bad
            spec:
              replicas: "two"
              template:
                spec:
                  containers: [{name: app, image: example/app:1.0}]
              strategy:
                canary:
                  steps: [{setWeight: 20}]
            """
        )
    )
    out = await cli("apply", "-f", str(good), "-f", str(bad), "--kubeconfig", str(kc))
    assert out.code == 1
    assert f"{bad}:6:" in out.err and "spec.replicas" in out.err
    assert "nothing was applied" in out.err
    assert stored(api, "Rollout", "default", "good") is None


async def test_apply_conflict_names_the_file_and_force_takes_over(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    # Someone else (another field manager) applied the same Rollout with other replicas.
    await client.apply(
        Rollout.from_dict({**rollout_doc(replicas=5), "metadata": {"name": "web", "namespace": "default"}}),
        field_manager="gitops",
    )
    path = write_yaml(tmp_path / "web.yaml", rollout_doc(replicas=2))
    refused = await cli("apply", "-f", str(path), "--kubeconfig", str(kc))
    assert refused.code == 1
    assert f"rollwise: {path}:1:1 rollout/web:" in refused.err and "--force-conflicts" in refused.err
    assert "Traceback" not in refused.err
    forced = await cli("apply", "-f", str(path), "--kubeconfig", str(kc), "--force-conflicts")
    assert forced.code == 0, forced
    obj = stored(api, "Rollout", "default", "web")
    assert obj is not None and obj["spec"]["replicas"] == 2


async def test_apply_refused_by_the_api_server_names_file_line_and_field(api: ApiServer, tmp_path: Path) -> None:
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    doc = rollout_doc()
    doc["metadata"]["labels"] = {"bad key!": "x"}  # lint leaves label syntax to the API server
    path = write_yaml(tmp_path / "web.yaml", doc)
    out = await cli("apply", "-f", str(path), "--kubeconfig", str(kc))
    assert out.code == 1, out
    lines = out.err.splitlines()
    # The server names the field metadata.labels.<key>: the key is on line 6 of the file as written.
    assert lines[0].startswith(f"{path}:6:5 metadata.labels.bad key!: "), out
    assert lines[-1].startswith(f"rollwise: {path}:1:1 rollout/web:")
    assert stored(api, "Rollout", "default", "web") is None


async def test_apply_learns_other_projects_kinds_from_the_cluster(
    api: ApiServer, shared_crds: Path, tmp_path: Path
) -> None:
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [{"name": "primary", "route": [{"destination": {"host": "web"}}]}]},
    }
    out = await cli("apply", "-f", str(write_yaml(tmp_path / "vs.yaml", vs)), "--kubeconfig", str(kc))
    assert out.code == 0, out
    assert out.out.strip() == "virtualservice/web created"
    assert stored(api, "VirtualService", "default", "web", "networking.istio.io/v1") is not None


# --- views ---------------------------------------------------------------------------------------


async def _rollout_in_progress(api: ApiServer, client: AsyncClient, namespace: str) -> None:
    """A rollout as a controller leaves it mid-update: status, its two ReplicaSets, an Event."""
    await client.create(Rollout.from_dict({**rollout_doc(), "metadata": {"name": "web", "namespace": namespace}}))
    status = {
        "phase": "Paused",
        "message": "paused at step 2",
        "currentRevision": "b2",
        "stableRevision": "a1",
        "currentStepIndex": 1,
        "readyReplicas": 2,
        "weights": [{"revision": "a1", "weight": 80}, {"revision": "b2", "weight": 20}],
        "history": [
            {"revision": "a1", "number": 1, "createdAt": "2026-11-26T10:00:00.000000Z"},
            {"revision": "b2", "number": 2, "createdAt": "2026-11-26T11:00:00.000000Z"},
        ],
        "revisions": [
            {"revision": "a1", "role": "stable", "replicas": 2, "ready": 2, "weight": 80},
            {"revision": "b2", "role": "canary", "replicas": 1, "ready": 1, "weight": 20},
        ],
    }
    await client.patch(Rollout.Status, "web", {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)
    for rev, image in (("a1", "example/app:1.0"), ("b2", "example/app:2.0")):
        await client.create(
            ReplicaSet.from_dict(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"web-{rev}",
                        "namespace": namespace,
                        "labels": {"rollwise.dev/rollout": "web", "rollwise.dev/revision": rev},
                    },
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"rollwise.dev/revision": rev}},
                        "template": {
                            "metadata": {"labels": {"rollwise.dev/revision": rev}},
                            "spec": {"containers": [{"name": "app", "image": image}]},
                        },
                    },
                }
            )
        )
    await client.create(
        Event.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "web.1", "namespace": namespace},
                "involvedObject": {"apiVersion": API, "kind": "Rollout", "name": "web", "namespace": namespace},
                "reason": "StepPaused",
                "message": "waiting for promote",
                "type": "Normal",
                "lastTimestamp": "2026-11-26T11:05:00Z",
            }
        )
    )


async def test_get_list_status_history_read_the_cluster(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    await make_namespace(client, "team")
    await _rollout_in_progress(api, client, "team")
    kc = write_kubeconfig(api, tmp_path / "kubeconfig", namespace="team")  # the context's namespace

    got = await cli("get", "web", "--kubeconfig", str(kc))
    assert got.code == 0, got
    assert "Namespace:  team" in got.out and "Phase:      Paused" in got.out
    assert "Step:       2/3" in got.out and "Traffic:    a1 80%, b2 20%" in got.out

    as_json = json.loads((await cli("get", "web", "--kubeconfig", str(kc), "-o", "json")).out)
    assert as_json["summary"]["currentRevision"] == "b2"
    assert as_json["events"][0]["reason"] == "StepPaused"

    listed = await cli("list", "--kubeconfig", str(kc))
    assert listed.code == 0 and "web" in listed.out and "canary" in listed.out and "Paused" in listed.out
    elsewhere = await cli("list", "--kubeconfig", str(kc), "-n", "default")
    assert elsewhere.out.strip() == "no rollouts in namespace default (apply one with `rollwise apply -f FILE`)"
    everywhere = await cli("list", "--kubeconfig", str(kc), "-n", "default", "-A")
    assert "team" in everywhere.out and "web" in everywhere.out

    shown = await cli("status", "web", "--kubeconfig", str(kc))
    assert shown.code == 0, shown
    for text in ("web  canary  Paused  revision b2 (stable a1)", "✓ 1. setWeight 20", "▶ 2. pause", "20%  1/1 ready"):
        assert text in shown.out, text
    assert "StepPaused: waiting for promote" in shown.out

    history = await cli("history", "web", "--kubeconfig", str(kc))
    lines = history.out.splitlines()
    assert lines[0].split() == ["REVISION", "HASH", "CREATED", "ROLE", "CONTAINERS"]
    assert lines[1].split()[:2] == ["1", "a1"] and "stable" in lines[1] and "app=example/app:1.0" in lines[1]
    assert lines[2].split()[:2] == ["2", "b2"] and "current" in lines[2] and "app=example/app:2.0" in lines[2]

    logs = await cli("logs", "web", "--kubeconfig", str(kc))
    assert logs.code == 1
    assert "kubectl logs -n team -l rollwise.dev/rollout=web,rollwise.dev/revision=b2" in logs.err

    missing = await cli("get", "nope", "--kubeconfig", str(kc))
    assert missing.code == 1 and missing.err.strip() == "rollwise: rollout nope not found in namespace team"


# --- commands ------------------------------------------------------------------------------------


async def test_command_without_a_controller_is_written_and_times_out(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await client.create(Rollout.from_dict({**rollout_doc(), "metadata": {"name": "web", "namespace": "default"}}))
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")

    sent = await cli("undo", "web", "--to-revision", "2", "--wait", "0", "--kubeconfig", str(kc))
    assert sent.code == 0, sent
    obj = stored(api, "Rollout", "default", "web")
    assert obj is not None
    body = json.loads(obj["metadata"]["annotations"]["rollwise.dev/command"])
    assert body["verb"] == "undo" and body["toRevision"] == 2
    assert sent.out.strip() == f"web: undo sent (command {body['id']})"

    waited = await cli("promote", "web", "--full", "--wait", "0.5", "--kubeconfig", str(kc))
    assert waited.code == 1
    assert "did not handle the command within 0.5s" in waited.err
    obj = stored(api, "Rollout", "default", "web")
    assert obj is not None
    assert json.loads(obj["metadata"]["annotations"]["rollwise.dev/command"])["verb"] == "promoteFull"


async def test_commands_are_handled_by_the_controller(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    from tests.kube.controller_harness import ControllerThread, ReadinessDriver, status

    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    path = write_yaml(tmp_path / "web.yaml", rollout_doc())
    await client.get(Namespace, "default")  # connect first (see docs/testing-kubernetes.md)
    controller = ControllerThread(api).start()
    async with ReadinessDriver(api, client) as driver:
        try:
            await controller.wait_started()
            assert (await cli("apply", "-f", str(path), "--kubeconfig", str(kc))).code == 0
            await wait_until(api, lambda: status(api, "web").get("phase") == "Healthy", timeout=30)

            write_yaml(path, rollout_doc(image="example/app:2.0"))
            assert (await cli("apply", "-f", str(path), "--kubeconfig", str(kc))).code == 0
            canary = await wait_until(
                api, lambda: status(api, "web").get("phase") == "Paused" and status(api, "web"), 30
            )
            assert canary["currentStepIndex"] == 1

            promoted = await cli("promote", "web", "--kubeconfig", str(kc))
            assert promoted.code == 0, promoted
            after = status(api, "web")
            assert promoted.out.strip() == f"web: {after['lastCommand']['message']}"
            # Then the controller removes the annotation.
            await wait_until(
                api,
                lambda: (
                    "rollwise.dev/command"
                    not in (stored(api, "Rollout", "default", "web") or {})["metadata"].get("annotations", {})
                ),
            )
            await wait_until(api, lambda: status(api, "web").get("phase") == "Healthy", timeout=30)

            # A verb the engine refuses now: exit 1 with the engine's reason.
            refused = await cli("retry", "web", "--kubeconfig", str(kc))
            assert refused.code == 1, refused
            assert refused.err.strip() == f"rollwise: web: {status(api, 'web')['lastCommand']['message']}"
            del driver
        finally:
            await controller.stop()


async def test_every_command_verb_through_the_controller(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    from tests.kube.controller_harness import ControllerThread, ReadinessDriver, status

    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    path = write_yaml(tmp_path / "web.yaml", rollout_doc())

    async def run(*args: str) -> Outcome:
        return await cli(*args, "--kubeconfig", str(kc))

    def phase() -> str | None:
        return status(api, "web").get("phase")

    await client.get(Namespace, "default")  # connect first (see docs/testing-kubernetes.md)
    controller = ControllerThread(api).start()
    async with ReadinessDriver(api, client):
        try:
            await controller.wait_started()
            assert (await run("apply", "-f", str(path))).code == 0
            await wait_until(api, lambda: phase() == "Healthy", timeout=30)
            first = status(api, "web")["stableRevision"]
            write_yaml(path, rollout_doc(image="example/app:2.0"))
            assert (await run("apply", "-f", str(path))).code == 0
            await wait_until(api, lambda: phase() == "Paused", timeout=30)

            said = await run("pause", "web")
            assert (said.code, said.out.strip()) == (0, "web: paused: nothing advances until resume"), said
            said = await run("pause", "web")
            assert (said.code, said.err.strip()) == (1, "rollwise: web: already paused"), said
            said = await run("resume", "web")
            assert (said.code, said.out.strip()) == (0, "web: unpaused"), said

            said = await run("abort", "web")
            assert (said.code, said.out.strip()) == (0, "web: aborted"), said
            await wait_until(api, lambda: phase() == "Aborted", timeout=30)
            said = await run("promote", "web")
            assert (said.code, said.err.strip()) == (1, "rollwise: web: aborted: retry to start over"), said
            said = await run("retry", "web")
            assert said.code == 0 and said.out.startswith("web: retrying the update to "), said
            await wait_until(api, lambda: phase() == "Paused", timeout=30)

            said = await run("promote", "web", "--full")
            assert said.out.strip() == "web: promoting in full, skipping remaining steps and analysis", said
            await wait_until(api, lambda: phase() == "Healthy", timeout=30)
            second = status(api, "web")["stableRevision"]
            assert second != first

            said = await run("undo", "web", "--to-revision", "1")
            assert said.code == 0 and said.out.startswith("web: "), said
            # Revision 1 again, as an undo (the spec still describes revision 2).
            undone = await wait_until(api, lambda: (status(api, "web").get("undo") or {}).get("revision"), timeout=30)
            assert undone == first and status(api, "web")["currentRevision"] == first
            said = await run("undo", "web", "--to-revision", "7")
            assert said.code == 1 and "no revision 7 in history" in said.err, said

            history = await run("history", "web")
            # An undone-to revision takes the next number, as in `kubectl rollout undo`.
            rows = [line.split() for line in history.out.splitlines()[1:]]
            assert [(r[0], r[1], r[3]) for r in rows] == [("2", second, "stable"), ("3", first, "current")], history
        finally:
            await controller.stop()


# --- set -----------------------------------------------------------------------------------------


async def test_set_image_command_and_env_edit_the_pod_template(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await client.create(Rollout.from_dict({**rollout_doc(), "metadata": {"name": "web", "namespace": "default"}}))
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")

    def container() -> dict[str, Any]:
        obj = stored(api, "Rollout", "default", "web")
        assert obj is not None
        return dict(obj["spec"]["template"]["spec"]["containers"][0])

    image = await cli("set", "image", "web", "app=example/app:1.1", "--kubeconfig", str(kc))
    assert image.code == 0 and image.out.strip() == "rollout/web configured (generation 2)", image
    assert container()["image"] == "example/app:1.1"

    same = await cli("set", "image", "web", "example/app:1.1", "--kubeconfig", str(kc))
    assert same.out.strip() == "rollout/web unchanged"
    # The same again, once the controller has aborted that revision: the answer says what rolls it out.
    aborted = {"specRevision": "abc123", "currentRevision": "abc123", "stableRevision": "0ld", "aborted": True}
    await client.patch(Rollout.Status, "web", {"status": aborted}, namespace="default", patch_type=PatchType.MERGE)
    same = await cli("set", "image", "web", "example/app:1.1", "--kubeconfig", str(kc))
    assert same.out.strip() == "rollout/web unchanged"
    assert "revision abc123, which was aborted; `rollwise retry web` rolls it out again" in same.err, same

    untagged = await cli("set", "image", "web", "app=example/app", "--kubeconfig", str(kc))
    assert untagged.code == 1 and "has no tag" in untagged.err
    wrong = await cli("set", "image", "web", "db=postgres:16", "--kubeconfig", str(kc))
    assert wrong.code == 1 and "no container 'db' (it has app)" in wrong.err

    command = await cli("set", "command", "web", "--kubeconfig", str(kc), "--", "serve", "--port", "8080")
    assert command.code == 0, command
    assert container()["command"] == ["serve", "--port", "8080"] and "args" not in container()

    env = await cli("set", "env", "web", "MODE=fast", "LEVEL=2", "--kubeconfig", str(kc))
    assert env.code == 0, env
    assert container()["env"] == [{"name": "MODE", "value": "fast"}, {"name": "LEVEL", "value": "2"}]
    await cli("set", "env", "web", "MODE-", "--kubeconfig", str(kc))
    assert container()["env"] == [{"name": "LEVEL", "value": "2"}]
    obj = stored(api, "Rollout", "default", "web")
    assert obj is not None and obj["metadata"]["generation"] == 5

    # With two containers, a bare IMAGE is ambiguous; CONTAINER=IMAGE and --container pick one.
    two = rollout_doc("two")
    two["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "example/proxy:1.0"})
    await client.create(Rollout.from_dict({**two, "metadata": {"name": "two", "namespace": "default"}}))
    bare = await cli("set", "image", "two", "example/app:9.9", "--kubeconfig", str(kc))
    assert bare.code == 1 and "several containers (app, proxy); write CONTAINER=IMAGE" in bare.err
    assert (await cli("set", "image", "two", "proxy=example/proxy:1.1", "--kubeconfig", str(kc))).code == 0
    assert (await cli("set", "env", "two", "-c", "proxy", "X=1", "--kubeconfig", str(kc))).code == 0
    obj = stored(api, "Rollout", "default", "two")
    assert obj is not None
    app_c, proxy_c = obj["spec"]["template"]["spec"]["containers"]
    assert app_c["image"] == "example/app:1.0" and "env" not in app_c
    assert proxy_c["image"] == "example/proxy:1.1" and proxy_c["env"] == [{"name": "X", "value": "1"}]


# --- a real process ------------------------------------------------------------------------------


async def test_a_failure_is_one_line_on_stderr_with_exit_status_1(api: ApiServer, tmp_path: Path) -> None:
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rollwise.cli",
        "get",
        "nope",
        "--kubeconfig",
        str(kc),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert out == b""
    assert err.decode().splitlines() == ["rollwise: rollout nope not found in namespace default"]
    assert any(a.user_agent.startswith("rollwise-cli/") and a.name == "nope" for a in api.audit)


async def test_status_watch_follows_the_rollout_until_it_ends(
    api: ApiServer, client: AsyncClient, tmp_path: Path
) -> None:
    await client.create(Rollout.from_dict({**rollout_doc(), "metadata": {"name": "web", "namespace": "default"}}))
    kc = write_kubeconfig(api, tmp_path / "kubeconfig")

    async def set_status(status: dict[str, Any]) -> None:
        await client.patch(Rollout.Status, "web", {"status": status}, namespace="default", patch_type=PatchType.MERGE)

    await set_status({"phase": "Progressing", "currentRevision": "b2", "stableRevision": "a1"})
    watching = asyncio.create_task(cli("status", "web", "-w", "--interval", "0.2", "--kubeconfig", str(kc)))
    # The CLI has read the rollout at least once before it moves on.
    # (Reads commit nothing for wait_until to wake on: poll the audit log.)
    async with asyncio.timeout(60):
        while sum(a.user_agent.startswith("rollwise-cli/") and a.resource == "rollouts" for a in api.audit) < 2:
            await asyncio.sleep(0.02)
    await set_status({"phase": "Healthy", "currentRevision": "b2", "stableRevision": "b2"})
    async with asyncio.timeout(60):
        done = await watching
    assert done.code == 0, done
    assert "Progressing" in done.out and "Healthy" in done.out

    await set_status({"phase": "Aborted", "message": "analysis failed", "aborted": True})
    aborted = await cli("status", "web", "-w", "--interval", "0.2", "--kubeconfig", str(kc))
    assert aborted.code == 1 and aborted.err.strip() == "rollwise: rollout web aborted: analysis failed"


async def test_an_unreachable_api_server_is_one_line(tmp_path: Path) -> None:
    # A port nothing listens on: bind one, note it, close it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    out = await cli("get", "web", "--kubeconfig", str(kc))
    assert out.code == 1
    assert out.err.startswith(f"rollwise: cannot reach the API server at http://127.0.0.1:{port}")
    assert len(out.err.splitlines()) == 1
    wrong_context = await cli("get", "web", "--kubeconfig", str(kc), "--context", "nope")
    assert wrong_context.code == 1 and "Context 'nope' not found" in wrong_context.err


async def test_context_picks_the_cluster_and_its_namespace(api: ApiServer, client: AsyncClient, tmp_path: Path) -> None:
    await make_namespace(client, "team")
    await client.create(Rollout.from_dict({**rollout_doc(), "metadata": {"name": "web", "namespace": "team"}}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "dead", "cluster": {"server": f"http://127.0.0.1:{dead}"}},
                    {"name": "emulator", "cluster": {"server": str(api.url).rstrip("/")}},
                ],
                "users": [{"name": "u", "user": {}}],
                "contexts": [
                    {"name": "elsewhere", "context": {"cluster": "dead", "user": "u"}},
                    {"name": "emu", "context": {"cluster": "emulator", "user": "u", "namespace": "team"}},
                ],
                "current-context": "elsewhere",
            }
        )
    )
    # $KUBECONFIG is read when --kubeconfig is not given.
    env = {"KUBECONFIG": str(kc)}
    assert (await cli("get", "web", "--context", "emu", env=env)).out.startswith("Name:       web\nNamespace:  team")
    assert (await cli("get", "web", "--platform", "kubernetes", env=env)).code == 1
