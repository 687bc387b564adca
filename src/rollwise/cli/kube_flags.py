"""`rollwise flags ...` against a cluster: the verbs read and edit FlagSet objects; the controller
writes each FlagSet into its ConfigMap `<name>-flags`, which pods mount.

A change is one JSON patch of the FlagSet, made as the field manager `rollwise-cli`: the flag is
replaced whole (a merge patch could not drop a targeting rule cleanly, and server-side apply
could not remove fields another manager owns), guarded by the resourceVersion it was computed
from (a concurrent write makes the API server refuse it; then it is read and made again). The
same patch appends the change to the FlagSet's annotation `rollwise.dev/flag-history`: the last
HISTORY_ENTRIES changes made with `rollwise flags`, kept within HISTORY_BYTES. Before writing,
the changed FlagSet goes through the same load and lint as `rollwise apply`.

Progressive flag rollouts run on the local platform only: the controller does not run them."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml

from rollwise.cli.errors import CliError
from rollwise.cli.flags_view import show_change, show_flag, show_history, show_list, with_user
from rollwise.cli.platform import KubeTarget

if TYPE_CHECKING:
    from rollwise.cli.kube_client import Cluster

HISTORY_ANNOTATION = "rollwise.dev/flag-history"
HISTORY_ENTRIES = 20
# Annotations of one object share 256 KiB; the history keeps well clear of that.
HISTORY_BYTES = 32 * 1024
ATTEMPTS = 5


def _command(*words: str) -> str:
    return shlex.join(["rollwise", "flags", *words])


# --- reading -------------------------------------------------------------------------------------


def _flagsets(cluster: Cluster, flagset: str | None) -> list[dict[str, Any]]:
    from rollwise.cli.kube_client import FlagSet, as_dict

    if flagset is not None:
        with cluster.errors(f"FlagSet {flagset}"):
            return [as_dict(cluster.client.get(FlagSet, flagset, namespace=cluster.namespace))]
    with cluster.errors():
        return [as_dict(o) for o in cluster.client.list(FlagSet, namespace=cluster.namespace)]


def _flags_of(obj: dict[str, Any]) -> dict[str, Any]:
    flags: dict[str, Any] = (obj.get("spec") or {}).get("flags") or {}
    return flags


def _locate(cluster: Cluster, flag: str, flagset: str | None) -> dict[str, Any]:
    """The FlagSet holding `flag` (named with --flagset when several do)."""
    found = [o for o in _flagsets(cluster, flagset) if flag in _flags_of(o)]
    if not found:
        where = f"FlagSet {flagset}" if flagset else "any FlagSet"
        raise CliError(f"no flag {flag!r} in {where} of namespace {cluster.namespace}")
    if len(found) > 1:
        names = ", ".join(sorted(o["metadata"]["name"] for o in found))
        raise CliError(f"flag {flag!r} is in several FlagSets ({names}); name one with --flagset")
    return found[0]


def _view(obj: dict[str, Any], key: str, flag: dict[str, Any]) -> dict[str, Any]:
    from rollwise.flags import document
    from rollwise.flags.configmap import configmap_name

    meta = obj["metadata"]
    return {
        "flag": key,
        "flagset": meta["name"],
        "namespace": meta.get("namespace"),
        **document.summary(flag),
        "variants": flag.get("variants"),
        "configMap": configmap_name(meta["name"]),
    }


def list_flags(target: KubeTarget, flagset: str | None = None, output: str = "text") -> None:
    from rollwise.cli.kube_client import Cluster

    with Cluster(target) as cluster:
        items = [_view(o, k, f) for o in _flagsets(cluster, flagset) for k, f in _flags_of(o).items()]
    show_list(items, output)


def _configmap_state(cluster: Cluster, obj: dict[str, Any]) -> str:
    """Whether the controller has written this FlagSet's content into its ConfigMap yet."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import ConfigMap
    from pydantic import ValidationError

    from rollwise.flags.configmap import KEY, configmap_name
    from rollwise.flags.kube import desired

    try:
        want = desired(obj)["data"][KEY]
    except ValidationError:
        return "the FlagSet is not valid: the controller cannot write it"
    try:
        cm = cluster.client.get(ConfigMap, configmap_name(obj["metadata"]["name"]), namespace=cluster.namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            with cluster.errors():
                raise
        return "missing (is the controller running? kubectl get pods -n rollwise-system)"
    return "up to date" if (cm.data or {}).get(KEY) == want else "not yet written by the controller"


def get(
    target: KubeTarget, flag: str, flagset: str | None = None, user: str | None = None, output: str = "text"
) -> None:
    from rollwise.cli.kube_client import Cluster

    with Cluster(target) as cluster:
        obj = _locate(cluster, flag, flagset)
        definition = _flags_of(obj)[flag]
        doc = {**_view(obj, flag, definition), "definition": definition}
        doc["configMapState"] = _configmap_state(cluster, obj)
    with_user(doc, flag, user)
    show_flag(doc, output, [f"configmap: {doc['configMap']} (key flags.json): {doc['configMapState']}"])


def _history_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(HISTORY_ANNOTATION)
    if not text:
        return []
    try:
        items = json.loads(text)
    except ValueError:
        name = obj["metadata"]["name"]
        raise CliError(f"FlagSet {name}: annotation {HISTORY_ANNOTATION} is not JSON") from None
    if not isinstance(items, list):
        return []
    return [{**i, "flagset": obj["metadata"]["name"]} for i in items if isinstance(i, dict)]


def history(
    target: KubeTarget, flag: str | None = None, flagset: str | None = None, limit: int = 50, output: str = "text"
) -> None:
    from rollwise.cli.kube_client import Cluster

    if limit < 1:
        raise CliError("--limit must be at least 1")
    with Cluster(target) as cluster:
        items = [i for o in _flagsets(cluster, flagset) for i in _history_of(o)]
    items = [i for i in items if flag is None or i.get("flag") == flag]
    items.sort(key=lambda i: str(i.get("time", "")))
    show_history(items[-limit:], output)


# --- changing ------------------------------------------------------------------------------------


def enable(target: KubeTarget, flag: str, flagset: str | None = None) -> None:
    from rollwise.flags import document

    _change(target, flag, flagset, document.enable, _command("enable", flag))


def disable(target: KubeTarget, flag: str, flagset: str | None = None) -> None:
    from rollwise.flags import document

    _change(target, flag, flagset, document.disable, _command("disable", flag))


def set_variant(target: KubeTarget, flag: str, variant: str, flagset: str | None = None) -> None:
    from rollwise.flags import document

    _change(target, flag, flagset, lambda f: document.set_variant(f, variant), _command("set", flag, variant))


def rollout(target: KubeTarget, flag: str) -> None:
    raise CliError(
        f"progressive flag rollouts run on the local platform only; the Kubernetes controller does not run them "
        f"(change {flag} for everyone with `rollwise flags enable|disable|set`)"
    )


def _lint(obj: dict[str, Any]) -> None:
    """The same load and lint as `rollwise apply`; problems name the FlagSet and the field."""
    from rollwise.lint import lint_loaded
    from rollwise.spec.loader import load_text
    from rollwise.spec.problems import SpecError

    meta = obj["metadata"]
    resource = {
        "apiVersion": obj.get("apiVersion"),
        "kind": "FlagSet",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
        "spec": obj.get("spec"),
    }
    where = f"flagset/{meta['name']}"
    try:
        loaded, _ = load_text(yaml.safe_dump(resource, sort_keys=False), where)
        problems = [p for p in lint_loaded(loaded) if p.severity == "error"]
    except SpecError as exc:
        problems = [p for p in exc.problems if p.severity == "error"]
    if problems:
        raise CliError(
            f"the change would make FlagSet {meta['name']} invalid; nothing was changed", [str(p) for p in problems]
        )


def history_entry(now: str, flag: str, old: Any, new: Any, command: str) -> dict[str, Any]:
    return {"time": now, "flag": flag, "old": old, "new": new, "command": command}


def bounded(items: list[dict[str, Any]]) -> str:
    """The annotation's text: the newest HISTORY_ENTRIES changes, fewer if they exceed HISTORY_BYTES
    (a single change too large to keep keeps its time, flag and command)."""
    items = items[-HISTORY_ENTRIES:]
    while True:
        text = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= HISTORY_BYTES:
            return text
        if len(items) > 1:
            items = items[1:]
        else:
            items = [{**items[0], "old": None, "new": None, "note": "definitions too large to keep"}]


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _change(
    target: KubeTarget,
    flag: str,
    flagset: str | None,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    command: str,
) -> None:
    from lightkube import ApiError
    from lightkube.types import PatchType

    from rollwise.analysis.timestamps import utc_now
    from rollwise.cli.kube_client import Cluster, FlagSet
    from rollwise.flags import document

    with Cluster(target) as cluster:
        for _ in range(ATTEMPTS):
            obj = _locate(cluster, flag, flagset)
            name = obj["metadata"]["name"]
            old = document.flag_of(obj, flag)
            try:
                new = edit(old)
            except document.FlagChangeError as exc:
                raise CliError(f"{flag}: {exc}") from None
            if new == old:
                show_change(flag, old, new)
                return
            _lint(document.changed(obj, flag, new))
            now = utc_now().isoformat(timespec="seconds").replace("+00:00", "Z")
            past = [{k: v for k, v in i.items() if k != "flagset"} for i in _history_of(obj)]
            annotations = dict(obj["metadata"].get("annotations") or {})
            annotations[HISTORY_ANNOTATION] = bounded([*past, history_entry(now, flag, old, new, command)])
            patch = [
                # The precondition: the API server refuses the patch if the FlagSet changed since.
                {"op": "replace", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]},
                {"op": "replace", "path": _pointer("spec", "flags", flag), "value": new},
                {"op": "add", "path": "/metadata/annotations", "value": annotations},
            ]
            try:
                cluster.client.patch(FlagSet, name, patch, namespace=cluster.namespace, patch_type=PatchType.JSON)
            except ApiError as exc:
                if exc.status.code == 409:
                    continue
                with cluster.errors(f"FlagSet {name}"):
                    raise
            show_change(flag, old, new)
            return
    raise CliError(f"the FlagSet of flag {flag!r} kept changing under this edit; try again")
