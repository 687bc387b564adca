"""The CLI's verbs against a cluster (see platform.py for when they apply). Commands travel as the
`rollwise.dev/command` annotation on the Rollout; the CLI waits until the controller reports it
handled (`status.handledCommand`) and prints the outcome the engine recorded (`status.lastCommand`)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rollwise.cli.errors import CliError
from rollwise.cli.get import step_text, summary_text, weights_text
from rollwise.cli.platform import KubeTarget, cluster_option
from rollwise.cli.status import DONE
from rollwise.platforms.hints import unchanged_hint
from rollwise.spec.status import RolloutStatus

# lightkube and the spec models load only when a verb talks to a cluster (the CLI starts faster).

DEFAULT_WAIT = 60.0
WAIT_OPTION = cluster_option(
    "wait",
    Annotated[
        float,
        typer.Option(
            "--wait",
            help="Kubernetes: seconds to wait for the controller to handle the command (0: do not wait).",
            min=0,
            rich_help_panel="Platform",
        ),
    ],
    DEFAULT_WAIT,
)
ALL_NAMESPACES_OPTION = cluster_option(
    "all_namespaces",
    Annotated[
        bool,
        typer.Option(
            "--all-namespaces", "-A", help="Kubernetes: rollouts of every namespace.", rich_help_panel="Platform"
        ),
    ],
    False,
)
FORCE_CONFLICTS_OPTION = cluster_option(
    "force_conflicts",
    Annotated[
        bool,
        typer.Option(
            "--force-conflicts",
            help="Kubernetes: take over fields another field manager owns (server-side apply force).",
            rich_help_panel="Platform",
        ),
    ],
    False,
)
CONTAINER_OPTION = cluster_option(
    "container",
    Annotated[
        str | None,
        typer.Option(
            "--container", "-c", help="Kubernetes: the container (default: the first).", rich_help_panel="Platform"
        ),
    ],
    None,
)


# --- reading -------------------------------------------------------------------------------------


def get(target: KubeTarget, name: str, output: str = "text") -> None:
    from rollwise.cli.kube_client import Cluster
    from rollwise.cli.kube_views import details

    with Cluster(target) as cluster:
        doc = details(cluster, name)
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(summary_text(doc["summary"]))


def list_rollouts(target: KubeTarget, output: str = "text", all_namespaces: bool = False) -> None:
    from rollwise.cli.kube_client import Cluster, Rollout, as_dict
    from rollwise.cli.kube_views import summary

    with Cluster(target) as cluster, cluster.errors():
        namespace = "*" if all_namespaces else cluster.namespace
        items = [summary(as_dict(r)) for r in cluster.client.list(Rollout, namespace=namespace)]
        where = "any namespace" if all_namespaces else f"namespace {cluster.namespace}"
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo(f"no rollouts in {where} (apply one with `rollwise apply -f FILE`)")
        return
    table = Table(box=None, pad_edge=False)
    columns = ["NAMESPACE"] if all_namespaces else []
    for column in (*columns, "NAME", "STRATEGY", "PHASE", "STEP", "TRAFFIC", "READY"):
        table.add_column(column)
    for s in items:
        row = [s["namespace"]] if all_namespaces else []
        row += [
            s["name"],
            s["strategy"],
            s["phase"] or "-",
            step_text(s),
            weights_text(s),
            f"{s['readyReplicas']}/{s['replicas']}",
        ]
        table.add_row(*row)
    Console(width=200).print(table)


def status(target: KubeTarget, name: str, watch: bool = False, interval: float = 1.0) -> None:
    from rollwise.cli.kube_client import Cluster
    from rollwise.cli.kube_views import details
    from rollwise.cli.status_view import render

    console = Console()
    with Cluster(target) as cluster:
        doc = details(cluster, name)
        console.print(render(doc))
        if not watch:
            return
        shown = _moment(doc)
        try:
            while doc["summary"]["phase"] not in DONE:
                time.sleep(interval)
                doc = details(cluster, name)
                if _moment(doc) != shown:
                    shown = _moment(doc)
                    console.print(render(doc))
        except KeyboardInterrupt:
            return
    if doc["summary"]["phase"] == "Aborted":
        raise CliError(f"rollout {name} aborted: {doc['summary']['message'] or ''}")


def _moment(doc: dict[str, Any]) -> tuple[Any, ...]:
    s = doc["summary"]
    return (s["phase"], s["step"], s["currentRevision"], tuple(sorted(s["weights"].items())), s["readyReplicas"])


def history_of(target: KubeTarget, name: str, output: str = "text") -> None:
    from rollwise.cli.kube_client import Cluster
    from rollwise.cli.kube_views import describe_template, history

    with Cluster(target) as cluster:
        items = history(cluster, name)
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("REVISION", "HASH", "CREATED", "ROLE", "CONTAINERS"):
        table.add_column(column)
    for item in items:
        role = "current" if item["current"] else ""
        if item["stable"]:
            role = "stable" if not role else "current, stable"
        table.add_row(
            str(item["number"]), item["revision"], item["createdAt"] or "", role, describe_template(item["template"])
        )
    Console(width=200).print(table)


def logs(target: KubeTarget, name: str, revision: str | None = None) -> None:
    from rollwise.cli.kube_client import REVISION_LABEL, ROLLOUT_LABEL, Cluster

    with Cluster(target) as cluster:
        obj = cluster.rollout(name)
        namespace = cluster.namespace
    revision = revision or (obj.get("status") or {}).get("currentRevision")
    selector = f"{ROLLOUT_LABEL}={name}" + (f",{REVISION_LABEL}={revision}" if revision else "")
    raise CliError(
        f"rollwise does not read pod logs on Kubernetes; use: kubectl logs -n {namespace} -l {selector} "
        "--all-containers --prefix"
    )


def not_on_cluster(target: KubeTarget) -> None:
    raise typer.BadParameter(
        "there is no control plane to start or stop on Kubernetes: the controller runs in the cluster "
        "(rollwise install --print | kubectl apply -f -)",
        param_hint="--platform",
    )


# --- commands ------------------------------------------------------------------------------------


def send(target: KubeTarget, name: str, verb: str, wait: float, to_revision: int | None = None) -> None:
    from rollwise.cli.kube_client import Cluster

    with Cluster(target) as cluster:
        command_id = cluster.send(name, verb, to_revision)
        if wait == 0:
            typer.echo(f"{name}: {verb} sent (command {command_id})")
            return
        status = cluster.wait_handled(name, command_id, wait)
    record = status.get("lastCommand") or {}
    message = record.get("message") or "done"
    if record.get("accepted") is False:
        raise CliError(f"{name}: {message}")
    typer.echo(f"{name}: {message}")


def promote(target: KubeTarget, name: str, full: bool = False, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "promoteFull" if full else "promote", wait)


def abort(target: KubeTarget, name: str, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "abort", wait)


def retry(target: KubeTarget, name: str, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "retry", wait)


def pause(target: KubeTarget, name: str, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "pause", wait)


def resume(target: KubeTarget, name: str, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "resume", wait)


def undo(target: KubeTarget, name: str, to_revision: int | None = None, wait: float = DEFAULT_WAIT) -> None:
    send(target, name, "undo", wait, to_revision)


# --- set: a new pod template, hence a new revision -----------------------------------------------


def set_image(
    target: KubeTarget,
    name: Annotated[str, typer.Argument(help="The rollout's metadata.name.")],
    pairs: Annotated[
        list[str], typer.Argument(help="CONTAINER=IMAGE (or just IMAGE for the only container).", show_default=False)
    ],
) -> None:
    """Change container images of a rollout's pod template: rollwise set image web app=example/app:1.1"""
    images: dict[str | None, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key and value:
            images[key] = value
        elif not sep and pair:
            images[None] = pair
        else:
            raise typer.BadParameter(f"{pair!r} is neither CONTAINER=IMAGE nor IMAGE", param_hint="PAIRS")

    def change(containers: list[dict[str, Any]], policy: str) -> None:
        from rollwise.lint.images import image_problem

        for container, image in images.items():
            c = _container(containers, container, name, only=True)
            problem = image_problem(image, policy)
            if problem is not None:
                raise CliError(f"rollout {name}: {problem}")
            c["image"] = image

    _edit_template(target, name, change)


def set_command(target: KubeTarget, name: str, argv: list[str], container: str | None = None) -> None:
    def change(containers: list[dict[str, Any]], _: str) -> None:
        c = _container(containers, container, name)
        # The whole command line: the image's entrypoint and arguments are both replaced.
        c["command"] = list(argv)
        c.pop("args", None)

    _edit_template(target, name, change)


def set_env(target: KubeTarget, pairs: list[str], name: str, container: str | None = None) -> None:
    env: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if sep and key:
            env[key] = value
        elif not sep and pair.endswith("-") and len(pair) > 1:
            env[pair[:-1]] = None
        else:
            raise typer.BadParameter(f"{pair!r} is neither NAME=VALUE nor NAME-", param_hint="PAIRS")

    def change(containers: list[dict[str, Any]], _: str) -> None:
        c = _container(containers, container, name)
        current = [e for e in c.get("env") or [] if e.get("name") not in env]
        current += [{"name": k, "value": v} for k, v in env.items() if v is not None]
        if current:
            c["env"] = current
        else:
            c.pop("env", None)

    _edit_template(target, name, change)


def _container(
    containers: list[dict[str, Any]], wanted: str | None, rollout: str, only: bool = False
) -> dict[str, Any]:
    """The container named `wanted`; unnamed, the first (with `only`: the only one)."""
    if not containers:
        raise CliError(f"rollout {rollout}: its pod template has no containers")
    if wanted is None:
        if only and len(containers) > 1:
            names = ", ".join(str(c.get("name")) for c in containers)
            raise CliError(f"rollout {rollout}: several containers ({names}); write CONTAINER=IMAGE")
        return containers[0]
    for c in containers:
        if c.get("name") == wanted:
            return c
    names = ", ".join(str(c.get("name")) for c in containers)
    raise CliError(f"rollout {rollout}: no container {wanted!r} (it has {names})")


def _edit_template(target: KubeTarget, name: str, change: Any) -> None:
    """Read, change and write back the pod template's containers, guarded by resourceVersion (a
    concurrent write makes the API server refuse ours; then read again and redo the change)."""
    from lightkube import ApiError
    from lightkube.types import PatchType

    from rollwise.cli.kube_client import Cluster, Rollout

    with Cluster(target) as cluster:
        for _ in range(5):
            obj = cluster.rollout(name)
            spec = obj.get("spec") or {}
            if spec.get("workloadRef"):
                ref = spec["workloadRef"]
                raise CliError(
                    f"rollout {name} takes its pod template from Deployment {ref.get('name')}: change it there "
                    f"(kubectl set ... deployment/{ref.get('name')})"
                )
            template = spec.get("template")
            if not template:
                raise CliError(f"rollout {name} has no pod template (spec.template)")
            containers = json.loads(json.dumps((template.get("spec") or {}).get("containers") or []))
            policy = (spec.get("immutable") or {}).get("images") or "tagged"
            change(containers, policy)
            if containers == (template.get("spec") or {}).get("containers"):
                typer.echo(f"rollout/{name} unchanged")
                hint = unchanged_hint(name, RolloutStatus.model_validate(obj.get("status") or {}))
                if hint is not None:
                    typer.echo(hint, err=True)
                return
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"template": {"spec": {"containers": containers}}},
            }
            try:
                after = cluster.client.patch(
                    Rollout, name, patch, namespace=cluster.namespace, patch_type=PatchType.MERGE
                )
            except ApiError as exc:
                if exc.status.code == 409:
                    continue
                with cluster.errors(f"rollout {name}"):
                    raise
            generation = after.metadata.generation if after.metadata else None
            typer.echo(f"rollout/{name} configured (generation {generation})")
            return
    raise CliError(f"rollout {name} kept changing under this edit; try again")
