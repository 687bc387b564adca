"""The pod template is Kubernetes' own; check it against Kubernetes' schema (when the
kubernetes-validate package is installed) rather than re-modelling it."""

from __future__ import annotations

import functools
from typing import Any

from rollwise.lint.context import Checker
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
        path = tuple(p for p in exc.path if isinstance(p, str | int))
        if path[:1] == ("spec",):
            path = path[1:]
        message = exc.message
        if message.startswith("Additional properties are not allowed"):
            message = "unknown field in the Kubernetes pod template"
            # jsonschema names the field in the message, not in the path
            extra = exc.message.split("'")
            if len(extra) > 1:
                path = (*path, extra[1])
        c.error(("spec", *path), f"{message} (Kubernetes {KUBERNETES_VERSION} schema)")
