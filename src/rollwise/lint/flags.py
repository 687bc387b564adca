"""Checks of FlagSet documents beyond their shape: variants that exist, fractional splits that add up."""

from __future__ import annotations

import difflib
from typing import Any

from rollwise.lint.context import Checker
from rollwise.spec.flags import Flag, FlagSet
from rollwise.spec.problems import FieldPath


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "list" if isinstance(value, list) else "null"


# The operators flagd evaluates: JsonLogic's (as its providers implement them) and flagd's own.
OPERATORS = frozenset(
    {
        *("var", "missing", "missing_some", "if", "?:", "and", "or", "!", "!!"),
        *("==", "===", "!=", "!==", ">", ">=", "<", "<=", "max", "min", "+", "-", "*", "/", "%"),
        *("map", "reduce", "filter", "all", "none", "some", "merge", "in", "cat", "substr", "log"),
        *("fractional", "sem_ver", "starts_with", "ends_with"),
    }
)


def check_flagset(c: Checker, fs: FlagSet) -> None:
    evaluators = set(fs.spec.evaluators or {})
    for key, flag in fs.spec.flags.items():
        _check_flag(c, key, flag, ("spec", "flags", key))
        if flag.targeting:
            _check_rules(c, flag.targeting, ("spec", "flags", key, "targeting"), evaluators)
    for name, rule in (fs.spec.evaluators or {}).items():
        _check_rules(c, rule, ("spec", "$evaluators", name), evaluators)
    for i, env in enumerate(fs.spec.env or []):
        if env.flag not in fs.spec.flags:
            c.error(("spec", "env", i, "flag"), f"no flag named {env.flag!r} in this FlagSet")


def _check_flag(c: Checker, key: str, flag: Flag, fp: FieldPath) -> None:
    if flag.default_variant not in flag.variants:
        c.error(
            (*fp, "defaultVariant"),
            f"{flag.default_variant!r} is not one of the variants ({', '.join(flag.variants)})",
        )
    by_type: dict[str, list[str]] = {}
    for name, value in flag.variants.items():
        by_type.setdefault(_json_type(value), []).append(name)
    if len(by_type) > 1:
        got = "; ".join(f"{t}: {', '.join(names)}" for t, names in sorted(by_type.items()))
        c.error((*fp, "variants"), f"all variants must have the same type (got {got})")
    if flag.targeting is not None:
        _check_targeting(c, flag, flag.targeting, (*fp, "targeting"))


def _check_targeting(c: Checker, flag: Flag, node: Any, path: FieldPath) -> None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_targeting(c, flag, item, (*path, i))
        return
    if not isinstance(node, dict):
        return
    for op, args in node.items():
        if op == "fractional":
            _check_fractional(c, flag, args, (*path, op))
        elif op == "if" and isinstance(args, list):
            # Every branch result that is a plain string must name a variant.
            for i, arg in enumerate(args):
                is_result = i % 2 == 1 or i == len(args) - 1
                if is_result and isinstance(arg, str) and arg not in flag.variants:
                    c.error(
                        (*path, op, i),
                        f"returns {arg!r}, which is not one of the variants ({', '.join(flag.variants)})",
                    )
        _check_targeting(c, flag, args, (*path, op))


def _check_fractional(c: Checker, flag: Flag, args: Any, path: FieldPath) -> None:
    if not isinstance(args, list) or not args:
        c.error(path, "must be a list of [variant, weight] buckets")
        return
    buckets = args[1:] if not isinstance(args[0], list) else args  # optional bucketing expression first
    offset = len(args) - len(buckets)
    total = 0
    for i, bucket in enumerate(buckets):
        bp = (*path, i + offset)
        if not (isinstance(bucket, list) and len(bucket) == 2 and isinstance(bucket[0], str)):
            c.error(bp, "must be a [variant, weight] pair")
            return
        if bucket[0] not in flag.variants:
            c.error((*bp, 0), f"{bucket[0]!r} is not one of the variants ({', '.join(flag.variants)})")
        weight = bucket[1]
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            c.error((*bp, 1), f"weight must be a non-negative integer (got {weight!r})")
            return
        total += weight
    if total != 100:
        c.error(path, f"weights must add up to 100 (got {total})")


def _check_rules(c: Checker, node: Any, path: FieldPath, evaluators: set[str]) -> None:
    """Every object in a rule is one operator applied to its arguments: an unknown operator or an
    object of several keys is a rule flagd cannot evaluate (it would fail or return the object)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_rules(c, item, (*path, i), evaluators)
        return
    if not isinstance(node, dict):
        return
    if list(node) == ["$ref"]:
        if node["$ref"] not in evaluators:
            known = ", ".join(sorted(evaluators)) or "none defined"
            c.error((*path, "$ref"), f"no evaluator named {node['$ref']!r} in $evaluators ({known})")
        return
    if len(node) != 1:
        c.error(path, f"a rule must be one operator applied to its arguments (got keys {', '.join(node)})")
        return
    op, args = next(iter(node.items()))
    if op not in OPERATORS:
        close = difflib.get_close_matches(op, OPERATORS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see flagd's targeting operators"
        c.error((*path, op), f"unknown operator {op!r}; {hint}")
        return
    _check_rules(c, args, (*path, op), evaluators)
