"""What one user gets from a flag, answered by the flagd provider's own evaluator (the code the
Python provider runs in-process), not by a re-implementation: `rollwise flags get FLAG --user KEY`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import OpenFeatureError


@dataclass(frozen=True)
class Resolution:
    value: Any
    variant: str | None
    reason: str


def resolve(key: str, flag: dict[str, Any], user: str, attributes: dict[str, Any] | None = None) -> Resolution:
    """The flag evaluated for targetingKey `user` with no caller default (None when DISABLED)."""
    sample = (flag.get("variants") or {}).get(flag.get("defaultVariant"))
    core = FlagdCore()
    core.set_flags({"flags": {key: copy.deepcopy(flag)}})  # the parser edits what it is given
    ctx = EvaluationContext(targeting_key=user, attributes=attributes or {})
    try:
        if isinstance(sample, bool):
            details: Any = core.resolve_boolean_value(key, None, ctx)  # type: ignore[arg-type]
        elif isinstance(sample, str):
            details = core.resolve_string_value(key, None, ctx)  # type: ignore[arg-type]
        elif isinstance(sample, int):
            details = core.resolve_integer_value(key, None, ctx)  # type: ignore[arg-type]
        elif isinstance(sample, float):
            details = core.resolve_float_value(key, None, ctx)  # type: ignore[arg-type]
        else:
            details = core.resolve_object_value(key, None, ctx)  # type: ignore[arg-type]
    except OpenFeatureError as exc:
        return Resolution(None, None, f"ERROR: {exc}")
    return Resolution(details.value, details.variant, str(getattr(details.reason, "value", details.reason)))
