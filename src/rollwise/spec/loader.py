"""Turn YAML files into validated resources, or into problems that name file:line:column, the
field path and what was expected. Nothing is half-loaded: a file with any error yields no resource."""

from __future__ import annotations

import difflib
import math
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
from rollwise.spec.yamlpos import Document, key_text, parse


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
        problems.append(doc.problem(("kind",), _kind_message(kind)))
        return None
    try:
        resource = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problem_from(doc, model, err) for err in exc.errors(include_url=False))
        return None
    return Loaded(doc, resource)


def _kind_message(kind: Any) -> str:
    expected = ", ".join(KINDS)
    if kind is None:
        return f"required: one of {expected}"
    if not isinstance(kind, str):
        return f"must be a string, one of {expected} (got {_describe(kind)})"
    hint = difflib.get_close_matches(kind, list(KINDS), n=1) or [k for k in KINDS if k.lower() == kind.lower()]
    if hint:
        return f"unknown kind {kind!r}; did you mean {hint[0]!r}?"
    return f"unknown kind {kind!r}; expected one of: {expected}"


def _problem_from(doc: Document, model: type[BaseModel], err: ErrorDetails) -> Problem:
    loc = err["loc"]
    if len(loc) >= 2 and loc[-1] == "[key]":
        # The mapping key itself is wrong (only strings are allowed), not the value under it.
        path, key = _yaml_path(doc.data, loc[:-1])
        why = "; unquoted on, off, yes and no are booleans in YAML" if isinstance(key, bool) else ""
        return doc.problem(path, f"a key must be a string (got {_describe(key)}{why}); put it in quotes")
    path, _ = _yaml_path(doc.data, loc)
    return doc.problem(path, _message(model, path, err))


def _yaml_path(data: Any, loc: tuple[int | str, ...]) -> tuple[FieldPath, Any]:
    """The validator's location as a path through the document, with each mapping key spelled as
    YAML writes it (the validator reports a key `1` as an int, which would read as a list index,
    and a key `true` as 1), and the last key as the document holds it."""
    out: list[str | int] = []
    current: Any = data
    key: Any = None
    for part in loc:
        if isinstance(current, dict):
            key = next((k for k in current if k == part), part)
            out.append(key_text(key))
            current = current.get(key)
        elif isinstance(current, list) and isinstance(part, int):
            out.append(part)
            current = current[part] if 0 <= part < len(current) else None
        else:
            out.append(part)
            current = None
    return tuple(out), key


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
        return _found(str(ctx.get("error", err["msg"])), value, model, path)
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


def _found(msg: str, value: Any, model: type[BaseModel], path: FieldPath) -> str:
    """A model's own message, with what was found spelled as YAML writes it (`true`, not Python's
    `True`), and added when the message has none."""
    python_got = f"(got {value!r})"
    if msg.endswith(python_got):
        return msg[: -len(python_got)] + f"(got {_describe(value)})"
    if "exactly one of" in msg and "(got" not in msg and isinstance(value, dict):
        # `pause:` with nothing after it is null, which counts as not set: say so, or the
        # message would contradict what the user can see.
        empty = [key_text(k) for k, v in value.items() if v is None]
        if empty:
            names = ", ".join(empty)
            verb = "is" if len(empty) == 1 else "are"
            # Only a field holding an object can be written as {}; a scalar needs its value.
            objects = [k for k in empty if _is_model(model, (*path, k))]
            hint = "write {} for an empty mapping" if objects else "give it a value"
            return f"{msg} (got none: {names} {verb} empty, which counts as not set; {hint})"
        return f"{msg} (got none)"
    return msg


def _is_model(model: type[BaseModel], path: FieldPath) -> bool:
    """Whether the field at `path` holds an object (even one without fields, like recreate)."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return False
        current = field.annotation
    current = _unwrap(current)
    return isinstance(current, type) and issubclass(current, BaseModel)


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
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, float) and not math.isfinite(value):
        return key_text(value)
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
