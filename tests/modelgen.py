"""Hypothesis strategies that build YAML-shaped data for any Rollwise model, read from the models
themselves (field types, aliases, constraints, exactly-one groups), so a new field is covered
without touching the tests."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import BaseModel, PlainValidator
from pydantic.fields import FieldInfo

from rollwise.spec import common
from rollwise.spec.flags import FlagValue
from rollwise.spec.workload import OpenObject

# Text a user could plausibly write: no control characters or lone surrogates, which YAML
# itself cannot carry unescaped.
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)
JSON_SCALAR = st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
DURATION = st.integers(0, 100_000) | st.builds(
    lambda n, u: f"{n}{u}", st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h"])
)
INT_OR_PERCENT = st.integers(0, 50) | st.integers(0, 100).map(lambda n: f"{n}%")

CUSTOM: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (common.IntOrPercent, INT_OR_PERCENT),
    (common.Duration, DURATION),
    (common.NonNegativeInt, st.integers(0, 10_000)),
    (common.PositiveInt, st.integers(1, 10_000)),
    (common.Weight, st.integers(0, 100)),
    (common.MirrorPercent, st.integers(1, 100)),
    (OpenObject, st.dictionaries(TEXT, JSON, max_size=3)),
    (FlagValue, JSON),
]


def _validator_key(meta: list[Any]) -> Any:
    return next((m.func for m in meta if isinstance(m, PlainValidator)), None)


# A field typed with one of our Annotated aliases reaches us as its bare type plus metadata, so the
# alias is recognised by its validator function.
BY_VALIDATOR = {
    key: strategy for alias, strategy in CUSTOM if (key := _validator_key(list(get_args(alias)[1:]))) is not None
}


def _custom(tp: Any, meta: list[Any]) -> st.SearchStrategy[Any] | None:
    for alias, strategy in CUSTOM:
        if tp == alias:
            return strategy
    return BY_VALIDATOR.get(_validator_key(meta))


def for_model(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return st.deferred(lambda: _model(model, depth))


def _model(model: type[BaseModel], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    exactly = set(getattr(model, "exactly_one_of", ()))
    at_most = set(getattr(model, "at_most_one_of", ()))
    group = exactly | at_most

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        chosen: set[str] = set()
        if exactly:
            chosen = {draw(st.sampled_from(sorted(exactly)))}
        elif at_most:
            pick = draw(st.none() | st.sampled_from(sorted(at_most)))
            chosen = {pick} if pick else set()
        for name, field in model.model_fields.items():
            key = field.alias or name
            if name in group:
                if name not in chosen:
                    continue
            elif not field.is_required() and (depth > 3 or not draw(st.booleans())):
                continue
            if key in ("apiVersion", "kind"):
                out[key] = field.default
                continue
            out[key] = draw(_for_type(field.annotation, field, depth + 1))
        return out

    return build()


def _for_type(tp: Any, field: FieldInfo | None, depth: int) -> st.SearchStrategy[Any]:
    custom = _custom(tp, list(field.metadata) if field else [])
    if custom is not None:
        return custom
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _for_type(args[0], field, depth)
        return st.one_of(*[_for_type(a, field, depth) for a in args])
    if origin is typing.Annotated:
        base, *meta = get_args(tp)
        return _scalar(base, meta, depth)
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin is list:
        (item,) = get_args(tp)
        min_size = _constraint(field, "min_length") or 0
        max_size = _constraint(field, "max_length") or max(min_size, 3)
        return st.lists(_for_type(item, None, depth), min_size=min_size, max_size=max_size)
    if origin is dict:
        _, value = get_args(tp)
        min_size = _constraint(field, "min_length") or 0
        return st.dictionaries(_keys(field), _for_type(value, None, depth), min_size=min_size, max_size=3)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return for_model(tp, depth)
    return _scalar(tp, list(field.metadata) if field else [], depth)


def _keys(field: FieldInfo | None) -> st.SearchStrategy[str]:
    return st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


def _scalar(tp: Any, meta: list[Any], depth: int) -> st.SearchStrategy[Any]:
    meta = [*meta, *(inner for m in meta if isinstance(m, FieldInfo) for inner in m.metadata)]
    custom = _custom(tp, meta)
    if custom is not None:
        return custom
    pattern = next((getattr(m, "pattern", None) for m in meta if getattr(m, "pattern", None)), None)
    min_length = next((getattr(m, "min_length", None) for m in meta if getattr(m, "min_length", None)), None)
    if tp is Any:
        return JSON
    if tp is str:
        if pattern:
            return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= 63)
        return TEXT.filter(lambda s: len(s) >= (min_length or 0)) if min_length else TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 1000)
    if tp is float:
        return st.floats(0.001, 0.49, allow_nan=False)
    custom = _custom(tp, meta)
    if custom is not None:
        return custom
    inner = get_origin(tp)
    if inner is not None or isinstance(tp, type):
        return _for_type(tp, None, depth)
    raise TypeError(f"no strategy for {tp!r}")


def _constraint(field: FieldInfo | None, name: str) -> int | None:
    if field is None:
        return None
    for m in field.metadata:
        value = getattr(m, name, None)
        if value is not None:
            return int(value)
    return None
