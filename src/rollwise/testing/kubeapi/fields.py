"""Field ownership (`metadata.managedFields`) and server-side apply.

A field set is a set of paths; each path is a tuple of the tokens `fieldsV1` uses: `f:<name>` for a
map field, `k:<json keys>` for an element of an associative list, `v:<json value>` for an element
of a set. A path names a leaf (scalar, atomic list, empty map) or a list element; maps with content
are not members themselves, only their fields are.

Apply, as the server does it (the subset documented in docs/testing-kubernetes.md):
1. the applied configuration's field set F (server-owned metadata and, per subresource, status or
   everything but status left out) is what the manager will own;
2. the configuration merges into the live object: maps by key, associative lists by their keys,
   sets by value, atomic lists and scalars replaced;
3. a field whose value that merge changes and that another manager owns is a conflict (409) unless
   `force=true`, which moves the field to the applier;
4. fields the applier owned before, left out of F and owned by no one else, are removed;
5. the applier's entry becomes F (fields with equal values stay shared with their other owners).
Every other write (create, update, patch) gives its manager (operation `Update`) the fields it
changed and takes them from every other manager; removed fields leave every set."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rollwise.testing.kubeapi.errors import ApiError
from rollwise.testing.kubeapi.schema import View
from rollwise.testing.kubeapi.util import json_copy

Path = tuple[str, ...]

# Fields the server sets and no manager owns.
STRIPPED: frozenset[Path] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        *(
            ("f:metadata", f"f:{name}")
            for name in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            )
        ),
    }
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def element_token(item: dict[str, Any], keys: Iterable[str]) -> str:
    return "k:" + _dumps({k: item[k] for k in keys if k in item})


def value_token(value: Any) -> str:
    return "v:" + _dumps(value)


def field_set(obj: Any, view: View) -> set[Path]:
    out: set[Path] = set()
    _collect(obj, view, (), out)
    out.discard(())
    return out


def _collect(value: Any, view: View, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _collect(sub, view.field(key), (*path, f"f:{key}"), out)
        return
    if isinstance(value, list) and value:
        kind, keys = view.list_type()
        if kind == "map" and keys and all(isinstance(v, dict) for v in value):
            items = view.items()
            for item in value:
                element = (*path, element_token(item, keys))
                out.add(element)
                for key, sub in item.items():
                    _collect(sub, items.field(key), (*element, f"f:{key}"), out)
            return
        if kind == "set":
            for item in value:
                out.add((*path, value_token(item)))
            return
    out.add(path)


def strip(paths: set[Path], in_scope: Callable[[Path], bool]) -> set[Path]:
    return {p for p in paths if in_scope(p) and not any(p[: len(s)] == s for s in STRIPPED)}


_MISSING = object()


def get_at(obj: Any, path: Path) -> Any:
    """The value at `path`, or _MISSING."""
    node = obj
    for tok in path:
        if tok.startswith("f:"):
            if not isinstance(node, dict) or tok[2:] not in node:
                return _MISSING
            node = node[tok[2:]]
        elif tok.startswith("k:"):
            keys = json.loads(tok[2:])
            if not isinstance(node, list):
                return _MISSING
            node = next(
                (i for i in node if isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items())), _MISSING
            )
            if node is _MISSING:
                return _MISSING
        elif tok.startswith("v:"):
            value = json.loads(tok[2:])
            if not isinstance(node, list) or value not in node:
                return _MISSING
            node = value
        else:
            return _MISSING
    return node


def changed_paths(old: Any, new: Any, paths: set[Path]) -> set[Path]:
    """The paths of `paths` (taken from `new`) whose value `old` lacks or has otherwise."""
    out: set[Path] = set()
    for p in paths:
        before = get_at(old, p) if old is not None else _MISSING
        if before is _MISSING or (not p[-1].startswith("k:") and before != get_at(new, p)):
            out.add(p)
    return out


def describe(path: Path) -> str:
    """A path as the server prints it in conflict messages: .spec.containers[name="a"].image."""
    out = ""
    for tok in path:
        if tok.startswith("f:"):
            out += "." + tok[2:]
        elif tok.startswith("k:"):
            keys = json.loads(tok[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        else:
            out += "[=" + tok[2:] + "]"
    return out


# --- fieldsV1 encoding ---------------------------------------------------------------------------


def encode(paths: set[Path]) -> dict[str, Any]:
    trie: dict[str, Any] = {}
    for p in sorted(paths):
        node = trie
        for tok in p:
            node = node.setdefault(tok, {})
        node["."] = {}
    return _tidy(trie)


def _tidy(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in node.items():
        if key == ".":
            continue
        out[key] = {} if list(sub) == ["."] else _tidy(sub)
    if "." in node and out:
        out = {".": {}, **out}
    return out


def decode(fields: dict[str, Any]) -> set[Path]:
    out: set[Path] = set()

    def walk(node: dict[str, Any], path: Path) -> None:
        if not node:
            out.add(path)
            return
        for key, sub in node.items():
            if key == ".":
                out.add(path)
            elif isinstance(sub, dict):
                walk(sub, (*path, key))

    walk(fields, ())
    out.discard(())
    return out


@dataclass
class Entry:
    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    subresource: str = ""
    fields: set[Path] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def read_entries(obj: dict[str, Any] | None) -> list[Entry]:
    if not obj:
        return []
    out = []
    for raw in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(raw, dict) or "manager" not in raw:
            continue
        out.append(
            Entry(
                manager=raw["manager"],
                operation=raw.get("operation", "Update"),
                api_version=raw.get("apiVersion", ""),
                time=raw.get("time", ""),
                subresource=raw.get("subresource", ""),
                fields=decode(raw.get("fieldsV1") or {}),
            )
        )
    return out


def write_entries(entries: list[Entry]) -> list[dict[str, Any]]:
    return [e.to_json() for e in entries if e.fields]


def _entry(entries: list[Entry], key: tuple[str, str, str], api_version: str, now: str) -> Entry:
    for e in entries:
        if e.key == key:
            return e
    e = Entry(key[0], key[1], api_version, now, key[2])
    entries.append(e)
    return e


def record_update(
    entries: list[Entry],
    old: dict[str, Any] | None,
    new: dict[str, Any],
    view: View,
    manager: str,
    subresource: str,
    api_version: str,
    now: str,
    in_scope: Callable[[Path], bool],
) -> list[Entry]:
    """Ownership after a non-apply write by `manager`."""
    entries = [Entry(e.manager, e.operation, e.api_version, e.time, e.subresource, set(e.fields)) for e in entries]
    new_set = strip(field_set(new, view), in_scope)
    old_set = strip(field_set(old, view), in_scope) if old is not None else set()
    changed = changed_paths(old, new, new_set)
    removed = old_set - new_set
    mine = _entry(entries, (manager, "Update", subresource), api_version, now)
    for e in entries:
        before = set(e.fields)
        if e is not mine:
            e.fields -= changed
        e.fields -= removed
        if e is mine:
            e.fields |= changed
        if e.fields != before:
            e.time = now
            if e is mine:
                e.api_version = api_version
    return [e for e in entries if e.fields]


def merge(live: Any, config: Any, view: View) -> Any:
    """The applied configuration merged into the live value."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, view.field(key))
            else:
                out[key] = json_copy(value)
        return out
    if isinstance(live, list) and isinstance(config, list):
        kind, keys = view.list_type()
        if kind == "map" and keys:
            result = list(live)
            items = view.items()
            for element in config:
                if not isinstance(element, dict):
                    raise ApiError(422, "Invalid", f"element of a map list is not an object: {element!r}")
                tok = element_token(element, keys)
                idx = next(
                    (i for i, c in enumerate(result) if isinstance(c, dict) and element_token(c, keys) == tok), None
                )
                if idx is None:
                    result.append(json_copy(element))
                else:
                    result[idx] = merge(result[idx], element, items)
            return result
        if kind == "set":
            return list(live) + [json_copy(v) for v in config if v not in live]
    return json_copy(config)


def remove_paths(obj: dict[str, Any], paths: set[Path], keep: set[Path]) -> dict[str, Any]:
    """Remove the values at `paths`, except where a path of `keep` lies at or below them."""
    out = json_copy(obj)
    for p in sorted(paths, key=len):  # parents first: a removed element takes its fields along
        if any(k[: len(p)] == p for k in keep):
            continue
        if len(p) >= 2 and p[-2].startswith("k:") and p[-1][2:] in json.loads(p[-2][2:]):
            continue  # never remove the key field of a list element that stays
        parent = get_at(out, p[:-1])
        tok = p[-1]
        if tok.startswith("f:") and isinstance(parent, dict):
            parent.pop(tok[2:], None)
        elif tok.startswith("k:") and isinstance(parent, list):
            keys = json.loads(tok[2:])
            parent[:] = [i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in keys.items()))]
        elif tok.startswith("v:") and isinstance(parent, list):
            value = json.loads(tok[2:])
            parent[:] = [i for i in parent if i != value]
    return out


def apply(
    entries: list[Entry],
    live: dict[str, Any] | None,
    config: dict[str, Any],
    view: View,
    manager: str,
    subresource: str,
    api_version: str,
    now: str,
    force: bool,
    in_scope: Callable[[Path], bool],
) -> tuple[dict[str, Any], list[Entry], list[tuple[str, Path]]]:
    """Merge `config` into `live` for `manager`. Returns the new object, the new entries and the
    conflicts ((manager, path) pairs; the caller refuses the request when there are any and
    `force` is off: the object and entries are then meaningless)."""
    entries = [Entry(e.manager, e.operation, e.api_version, e.time, e.subresource, set(e.fields)) for e in entries]
    applied = strip(field_set(config, view), in_scope)
    merged = merge(live, config, view) if live is not None else json_copy(config)
    new_paths = strip(field_set(merged, view), in_scope)
    changed = changed_paths(live, merged, new_paths) if live is not None else new_paths
    key = (manager, "Apply", subresource)
    conflicts = [(e.manager, p) for e in entries if e.key != key for p in sorted(e.fields & changed)]
    mine = _entry(entries, key, api_version, now)
    previous = set(mine.fields)
    for e in entries:
        if e is not mine and force:
            before = set(e.fields)
            e.fields -= changed
            if e.fields != before:
                e.time = now
    others: set[Path] = set().union(*(e.fields for e in entries if e is not mine))
    stale = previous - applied - others
    if stale:
        merged = remove_paths(merged, stale, applied | others)
    if mine.fields != applied:
        mine.fields = applied
        mine.time = now
        mine.api_version = api_version
    present = strip(field_set(merged, view), in_scope)
    for e in entries:
        e.fields &= present | {p for p in e.fields if get_at(merged, p) is not _MISSING}
    return merged, [e for e in entries if e.fields], conflicts
