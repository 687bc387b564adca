"""The pod template is Kubernetes' own; check it against Kubernetes' schema (when the
kubernetes-validate package is installed) rather than re-modelling it."""

from __future__ import annotations

import difflib
import functools
from typing import Any

from rollwise.lint.context import Checker
from rollwise.spec.problems import FieldPath
from rollwise.spec.rollout import Rollout

KUBERNETES_VERSION = "1.31"


@functools.cache
def _validator() -> Any:
    try:
        import kubernetes_validate
    except ImportError:  # an optional extra: lint still checks everything else
        return None
    return kubernetes_validate


def check_pod_template(c: Checker, ro: Rollout) -> None:
    kv = _validator()
    template = ro.spec.template
    if kv is None or template is None:
        return
    # A Deployment carries the same PodTemplateSpec, so its schema checks ours exactly.
    wrapper = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": ro.metadata.name},
        "spec": {
            "selector": (ro.spec.selector.to_dict() if ro.spec.selector else {}),
            "template": template.to_dict(),
        },
    }
    try:
        kv.validate(wrapper, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        path: FieldPath = tuple(p for p in exc.path if isinstance(p, str | int))
        if path[:1] == ("spec",):
            path = path[1:]
        for where, message in _explain(exc, path):
            c.error(("spec", *where), f"{message} (Kubernetes {KUBERNETES_VERSION} schema)")
    except Exception as exc:  # a schema the package cannot load must not stop the other checks
        c.warn(("spec", "template"), f"could not check against the Kubernetes {KUBERNETES_VERSION} schema: {exc}")


_TYPES = {
    "array": "a list",
    "object": "a mapping",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


def _explain(exc: Any, path: FieldPath) -> list[tuple[FieldPath, str]]:
    """The schema error in Rollwise's words: each unknown field at its own position (with the
    nearest known name), a missing field at the object that should hold it, a wrong type with what
    was expected and found. Anything else keeps jsonschema's message."""
    schema = exc.schema if isinstance(exc.schema, dict) else {}
    instance = exc.instance
    if exc.validator == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties") or {})
        out: list[tuple[FieldPath, str]] = []
        for key in instance:
            if key in known:
                continue
            hint = difflib.get_close_matches(str(key), known, n=1)
            what = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(known)}"
            out.append(((*path, str(key)), f"unknown field in the Kubernetes pod template; {what}"))
        if out:
            return out
    if exc.validator == "required" and isinstance(instance, dict):
        missing = [r for r in exc.validator_value or [] if r not in instance]
        if missing:
            return [((*path, str(name)), "required field is missing") for name in missing]
    wanted: list[Any] = []
    if exc.validator == "type":
        wanted = exc.validator_value if isinstance(exc.validator_value, list) else [exc.validator_value]
    elif exc.validator in ("oneOf", "anyOf") and isinstance(exc.validator_value, list):
        # e.g. a quantity, int-or-string: alternatives that differ only in type
        for alternative in exc.validator_value:
            t = alternative.get("type") if isinstance(alternative, dict) else None
            wanted += t if isinstance(t, list) else [t]
    words = list(dict.fromkeys(_TYPES.get(str(t), str(t)) for t in wanted if t != "null"))
    if words and None not in wanted:
        return [(path, f"must be {' or '.join(words)} (got {_describe(instance)})")]
    return [(path, str(exc.message))]


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
