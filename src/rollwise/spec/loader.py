"""Turn YAML files into validated resources, or into problems that name file:line:column, the
field path and what was expected. Nothing is half-loaded: a file with any error yields no resource."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rollwise.spec import KINDS, Resource
from rollwise.spec.common import API_GROUP, API_VERSION
from rollwise.spec.problems import FieldPath, Problem, SpecError
from rollwise.spec.yamlpos import Document, parse


@dataclass
class Loaded:
    document: Document
    resource: Resource


@dataclass
class Foreign:
    """A document of another API group (a Service, an Ingress, a VirtualService...) that shares a
    file with Rollwise resources; kept so that lint can check it and platforms can apply it."""

    document: Document


def load_text(text: str, file: str) -> tuple[list[Loaded], list[Foreign]]:
    loaded: list[Loaded] = []
    foreign: list[Foreign] = []
    problems: list[Problem] = []
    for doc in parse(text, file):
        result = _validate(doc, problems)
        if isinstance(result, Foreign):
            foreign.append(result)
        elif result is not None:
            loaded.append(result)
    if problems:
        raise SpecError(problems)
    return loaded, foreign


def load_file(path: str | Path) -> tuple[list[Loaded], list[Foreign]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem(str(path), 0, 0, "<file>", "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), 0, 0, "<file>", "is a directory, not a YAML file")]) from None
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(str(path), 0, 0, "<file>", f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise SpecError([Problem(str(path), 0, 0, "<file>", exc.strerror or str(exc))]) from None
    return load_text(text, str(path))


def _validate(doc: Document, problems: list[Problem]) -> Loaded | Foreign | None:
    data = doc.data
    if not isinstance(data, dict):
        problems.append(
            doc.problem((), f"a document must be a mapping with apiVersion and kind (got {_describe(data)})")
        )
        return None
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not api_version:
        problems.append(doc.problem(("apiVersion",), f"required: a string such as {API_VERSION}"))
        return None
    if not api_version.startswith(API_GROUP + "/"):
        return Foreign(doc)
    if api_version != API_VERSION:
        problems.append(doc.problem(("apiVersion",), f"unsupported version {api_version!r}; expected {API_VERSION}"))
        return None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.append(doc.problem(("kind",), f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}"))
        return None
    try:
        resource = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problem_from(doc, model, err) for err in exc.errors(include_url=False))
        return None
    return Loaded(doc, resource)


def _problem_from(doc: Document, model: type[BaseModel], err: ErrorDetails) -> Problem:
    path: FieldPath = tuple(p for p in err["loc"] if isinstance(p, str | int))
    return doc.problem(path, _message(model, path, err))


def _message(model: type[BaseModel], path: FieldPath, err: ErrorDetails) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f"(got {_describe(value)})"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, path[:-1])
        name = str(path[-1]) if path else ""
        hint = difflib.get_close_matches(name, allowed, n=1)
        if hint:
            return f"unknown field; did you mean {hint[0]!r}?"
        return f"unknown field; expected one of: {', '.join(allowed)}" if allowed else "unknown field"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        return msg
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} {got}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if pattern.startswith("^[a-z0-9]([-a-z0-9]*[a-z0-9])?"):
            return f"must be a lowercase DNS name: a-z, 0-9 and '-', starting and ending alphanumeric {got}"
        if pattern == "^https?://":
            return f"must be an http:// or https:// URL {got}"
        if pattern == "^/":
            return f"must be an absolute path starting with '/' {got}"
        return f"must match the pattern {pattern} {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters (got {len(str(value))})"
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    if kind == "too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} item{'s' if n != 1 else ''} (got {ctx.get('actual_length')})"
    comparisons = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in comparisons:
        words, key = comparisons[kind]
        return f"must be {words} {ctx.get(key)} {got}"
    expected = {
        "string_type": "a string",
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "bool_type": "true or false",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "list_type": "a list",
    }.get(kind)
    if expected:
        return f"must be {expected} {got}"
    msg = err["msg"]
    return msg[:1].lower() + msg[1:]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return repr(value)


def _fields_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """YAML field names of the model found at `path` below `model`, for "did you mean" hints."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if get_origin(current) is dict:
            current = get_args(current)[1]
            continue
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            if isinstance(part, int):
                continue
            return []
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        current = field.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional, list[...] and Annotated down to the model class, if any."""
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        elif origin is list:
            tp = get_args(tp)[0]
        else:
            return tp
