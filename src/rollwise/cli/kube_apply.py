"""`rollwise apply -f FILE...` against a cluster: lint every file first (nothing is applied when any
has an error), then server-side apply each document as the field manager `rollwise-cli` —
templates and flag sets first, then the other objects of the files (Services, routes), Rollouts
last, so that what a Rollout refers to exists when the controller first sees it. A refusal by the
API server is reported at the file, line and field it concerns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rollwise.cli.errors import CliError
from rollwise.cli.platform import KubeTarget

if TYPE_CHECKING:
    from lightkube import ApiError

    from rollwise.cli.kube_client import Cluster
    from rollwise.spec.problems import FieldPath
    from rollwise.spec.yamlpos import Document

_ORDER = {"AnalysisTemplate": 0, "ClusterAnalysisTemplate": 0, "FlagSet": 0, "Rollout": 3, "AnalysisRun": 4}
_FOREIGN = 2
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def apply_to_cluster(target: KubeTarget, files: list[Path], force_conflicts: bool = False) -> None:
    from lightkube import codecs
    from lightkube.core.exceptions import LoadResourceError
    from lightkube.generic_resource import load_in_cluster_generic_resources

    from rollwise.cli.kube_client import Cluster
    from rollwise.lint import expand, lint_paths

    paths = expand(files)
    if not paths:
        raise typer.BadParameter("no YAML files found", param_hint="--file")
    result = lint_paths(paths)
    if result.errors:
        n = len(result.errors)
        raise CliError(
            f"{n} problem{'s' if n != 1 else ''} found; nothing was applied", [str(p) for p in result.errors]
        )
    docs = [(_ORDER.get(item.resource.kind, 1), item.document) for item in result.loaded]
    docs += [(_FOREIGN, item.document) for item in result.foreign]
    docs.sort(key=lambda d: d[0])  # stable: file order within a group
    with Cluster(target) as cluster:
        discovered = False
        for _, doc in docs:
            try:
                obj = codecs.from_dict(doc.data)
            except LoadResourceError:
                if not discovered:
                    # Custom kinds of other projects (Istio, Gateway API): learn them from the CRDs.
                    with cluster.errors():
                        load_in_cluster_generic_resources(cluster.client)
                    discovered = True
                try:
                    obj = codecs.from_dict(doc.data)
                except LoadResourceError:
                    raise CliError(
                        f"{_where(doc, ('kind',))}: {doc.data.get('apiVersion')} {doc.data.get('kind')} is not "
                        "served by this cluster (is its CRD installed?)"
                    ) from None
            typer.echo(_apply_one(cluster, doc, obj, force_conflicts))


def _apply_one(cluster: Cluster, doc: Document, obj: Any, force: bool) -> str:
    from lightkube import ApiError
    from lightkube.core.resource import NamespacedResource

    kind, name = doc.data["kind"], doc.data["metadata"]["name"]
    namespaced = isinstance(obj, NamespacedResource)
    namespace = (doc.data["metadata"].get("namespace") or cluster.namespace) if namespaced else None
    label = f"{kind.lower()}/{name}"
    before: Any = None
    try:
        before = cluster.client.get(type(obj), name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise _refusal(doc, label, exc) from None
    try:
        after: Any = cluster.client.apply(obj, namespace=namespace, force=force)  # type: ignore[call-overload]
    except ApiError as exc:
        raise _refusal(doc, label, exc, force) from None
    if before is None:
        return f"{label} created"
    if after.metadata.resourceVersion == before.metadata.resourceVersion:
        return f"{label} unchanged"
    generation = after.metadata.generation
    return f"{label} configured" + (f" (generation {generation})" if generation else "")


def _refusal(doc: Document, label: str, exc: ApiError, force: bool = False) -> CliError:
    status = exc.status
    causes = (status.details.causes if status.details else None) or []
    lines = [
        f"{_where(doc, _field_path(c.field))} {c.field or ''}: {c.message or c.reason or ''}".replace(" :", ":")
        for c in causes
        if c.field or c.message
    ]
    message = status.message or status.reason or f"the API server answered {status.code}"
    if status.code == 409 and not force:
        message += " (another field manager owns these fields: re-run with --force-conflicts to take them over)"
    where = _where(doc, ())
    return CliError(f"{where} {label}: {message}; applied so far stays applied", lines)


def _where(doc: Document, path: FieldPath) -> str:
    line, column = doc.locate(path)
    return f"{doc.file}:{line}:{column}"


def _field_path(field: str | None) -> FieldPath:
    """`spec.steps[2].setWeight` -> ("spec", "steps", 2, "setWeight")."""
    if not field:
        return ()
    return tuple(int(index) if index else key for key, index in _PART.findall(field))
