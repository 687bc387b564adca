"""CEL success and failure conditions, evaluated with `result` bound to a measurement.

Missing data is decided before any condition runs: an empty vector, null or NaN means nobody was
measured (no traffic, a label that matches nothing, 0/0). CEL would compare NaN as false and a
`failureCondition` would then pass silently, so such a result is Inconclusive with the reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError, base_functions

from rollwise.spec.analysis import Metric

Result: TypeAlias = "bool | int | float | str | list[Result] | dict[str, Result] | None"
Outcome = Literal["Successful", "Failed", "Inconclusive", "Error"]

_SHOWN_CHARS = 200


@dataclass(frozen=True)
class Assessment:
    phase: Outcome
    message: str


def encode_result(result: Result) -> str:
    """The value as a measurement stores it: JSON, with NaN and infinities spelled as Prometheus does."""
    return json.dumps(_jsonable(result), separators=(",", ":"), allow_nan=False)


def show(result: Result) -> str:
    text = encode_result(result)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _jsonable(value: Result) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def missing_data(result: Result) -> str | None:
    """Why `result` carries no measurement, or None when it does."""
    if result is None:
        return "the measurement returned no value (null)"
    if isinstance(result, list | dict) and not result:
        kind = "vector" if isinstance(result, list) else "object"
        return f"the measurement returned an empty {kind}"
    path = _find_nan(result, "result")
    if path is not None:
        return f"{path} is NaN (typically 0/0: no requests in the window); NaN is never read as 0"
    return None


def _find_nan(value: Result, path: str) -> str | None:
    if isinstance(value, float) and math.isnan(value):
        return path
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_nan(v, f"{path}[{i}]")
            if found:
                return found
    if isinstance(value, dict):
        for k, v in value.items():
            found = _find_nan(v, f"{path}.{k}")
            if found:
                return found
    return None


def assess(metric: Metric, result: Result, *, no_data: str | None = None) -> Assessment:
    """The verdict of one measurement. `no_data` is the provider's own reason when it knows there
    was nothing to measure (e.g. no requests reached the revision). Argo Rollouts' rules: failure
    wins; with only a successCondition, not meeting it fails; with only a failureCondition, not
    meeting it succeeds; with both, meeting neither is Inconclusive."""
    reason = no_data or missing_data(result)
    if reason is not None:
        return Assessment("Inconclusive", f"no data: {reason}")
    success, failure = metric.success_condition, metric.failure_condition
    if success is None and failure is None:
        return Assessment("Error", f"metric {metric.name!r} has neither successCondition nor failureCondition")
    shown = show(result)
    try:
        failed = failure is not None and evaluate(failure, result)
        if failed:
            return Assessment("Failed", f"result {shown} meets failureCondition {failure!r}")
        if success is None:
            return Assessment("Successful", f"result {shown} does not meet failureCondition {failure!r}")
        if evaluate(success, result):
            return Assessment("Successful", f"result {shown} meets successCondition {success!r}")
    except ConditionError as exc:
        return Assessment("Error", f"{exc} (result {shown})")
    if failure is None:
        return Assessment("Failed", f"result {shown} does not meet successCondition {success!r}")
    return Assessment(
        "Inconclusive", f"result {shown} meets neither successCondition {success!r} nor failureCondition {failure!r}"
    )


class ConditionError(Exception):
    """A condition that does not compile, fails to evaluate, or yields something other than a bool."""


def evaluate(expression: str, result: Result) -> bool:
    program = _program(expression)
    try:
        value = program.evaluate({"result": json_to_cel(result)})
    except CELEvalError as exc:
        raise ConditionError(f"condition {expression!r} could not be evaluated: {_eval_message(exc)}") from exc
    except Exception as exc:  # celpy raises plain Python errors for some faults
        raise ConditionError(f"condition {expression!r} could not be evaluated: {exc}") from exc
    if isinstance(value, CELEvalError):
        raise ConditionError(f"condition {expression!r} could not be evaluated: {_eval_message(value)}")
    if not isinstance(value, celtypes.BoolType):
        raise ConditionError(f"condition {expression!r} gave {value!r}, not true or false")
    return bool(value)


_OVERLOAD = re.compile(r"no matching overload for Token\('RULE', '(\w+)'\) applied to '\((.*)\)'")
_CEL_TYPE = re.compile(r"<class '(?:[\w.]*\.)?(\w+)'>")
_OPERATOR_NAMES = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}
_TYPE_NAMES = {
    "StringType": "string",
    "DoubleType": "double",
    "IntType": "int",
    "UintType": "uint",
    "BoolType": "bool",
    "ListType": "list",
    "MapType": "map",
    "NoneType": "null",
}


def _eval_message(exc: CELEvalError) -> str:
    args = exc.args
    overload = _OVERLOAD.search(str(args[0])) if args else None
    if overload:
        op = _OPERATOR_NAMES.get(overload.group(1), overload.group(1))
        types = [_TYPE_NAMES.get(t, t) for t in _CEL_TYPE.findall(overload.group(2))]
        return f"{op!r} does not apply to {' and '.join(types)}"
    if len(args) >= 3 and args[2]:
        inner = args[2]
        detail = inner[0] if isinstance(inner, tuple) and inner else inner
        return f"{args[0]}: {detail}"
    return str(args[0]) if args else str(exc)


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


@functools.lru_cache(maxsize=512)
def _program(expression: str) -> Any:
    env = _environment()
    try:
        ast = env.compile(expression)
    except Exception as exc:
        raise ConditionError(f"condition {expression!r} does not compile: {exc}") from exc
    return env.program(ast, functions=_NUMERIC_RELATIONS)


# CEL defines comparisons across int, uint and double (`1 == 1.0`, `result >= 0.99` with an int
# result); cel-python 0.5 rejects them as missing overloads. A webhook replying `1` or a condition
# written `result == 1` against Prometheus' floats must work, so numbers compare by value.
def _numeric(op: Callable[[Any, Any], bool], name: str) -> Callable[[Any, Any], Any]:
    fallback = base_functions[name]

    def relation(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b):
            return celtypes.BoolType(op(float(a), float(b)))
        return fallback(a, b)

    return relation


def _is_number(value: Any) -> bool:
    return isinstance(value, celtypes.IntType | celtypes.UintType | celtypes.DoubleType) and not isinstance(
        value, celtypes.BoolType
    )


_NUMERIC_RELATIONS: dict[str, Any] = {
    "_<_": _numeric(lambda a, b: a < b, "_<_"),
    "_<=_": _numeric(lambda a, b: a <= b, "_<=_"),
    "_>_": _numeric(lambda a, b: a > b, "_>_"),
    "_>=_": _numeric(lambda a, b: a >= b, "_>=_"),
    "_==_": _numeric(lambda a, b: a == b, "_==_"),
    "_!=_": _numeric(lambda a, b: a != b, "_!=_"),
}
