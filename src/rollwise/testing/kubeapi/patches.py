"""The three patch formats of PATCH requests (server-side apply lives in fields.py).

- JSON merge patch, RFC 7386 (`application/merge-patch+json`): maps merge, `null` deletes, lists
  are replaced whole.
- JSON patch, RFC 6902 (`application/json-patch+json`): add, remove, replace, move, copy, test.
  A failing operation (including `test`) is a 422, as from the server; a malformed patch a 400.
- Strategic merge patch (`application/strategic-merge-patch+json`, built-in kinds only): like a
  merge patch, but lists with a patch-merge key (containers by name, ...) merge by that key and
  primitive `merge` lists (finalizers) union; directives `$patch: replace|delete`,
  `$deleteFromPrimitiveList/<field>`, `$retainKeys` and `$setElementOrder/<field>` (accepted,
  order not enforced). This is a subset of the real one (see docs/testing-kubernetes.md)."""

from __future__ import annotations

from typing import Any

from rollwise.testing.kubeapi.errors import bad_request, unprocessable
from rollwise.testing.kubeapi.schema import View
from rollwise.testing.kubeapi.util import json_copy


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    out: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --- RFC 6902 ------------------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise bad_request(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, dict):
            if part not in node:
                raise unprocessable(f"jsonpatch: path {path!r} not found: missing key {part!r}")
            node = node[part]
        elif isinstance(node, list):
            idx = _index(part, len(node), path, allow_end=False)
            node = node[idx]
        else:
            raise unprocessable(f"jsonpatch: path {path!r} not found")
    return node


def _index(part: str, length: int, path: str, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return length
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise unprocessable(f"jsonpatch: invalid array index {part!r} in {path!r}")
    idx = int(part)
    if idx > length or (idx == length and not allow_end):
        raise unprocessable(f"jsonpatch: array index {idx} out of bounds in {path!r}")
    return idx


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), path, allow_end=True), value)
    else:
        raise unprocessable(f"jsonpatch: cannot add at {path!r}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> tuple[Any, Any]:
    if not parts:
        raise unprocessable("jsonpatch: cannot remove the whole document")
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"jsonpatch: cannot remove {path!r}: no such key")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), path, allow_end=False))
    raise unprocessable(f"jsonpatch: cannot remove {path!r}")


def json_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, list):
        raise bad_request("json patch must be a list of operations")
    doc = json_copy(target)
    for op in patch:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"json patch {kind!r} operation needs a value: {op!r}")
        if kind == "add":
            doc = _add(doc, parts, json_copy(op["value"]), path)
        elif kind == "remove":
            doc, _ = _remove(doc, parts, path)
        elif kind == "replace":
            _resolve(doc, parts, path)
            if parts:
                doc, _ = _remove(doc, parts, path)
            doc = _add(doc, parts, json_copy(op["value"]), path)
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from"))
            if kind == "move":
                if parts[: len(src)] == src and len(parts) > len(src):
                    raise unprocessable(f"jsonpatch: cannot move {op['from']!r} into its own child {path!r}")
                doc, value = _remove(doc, src, str(op["from"]))
            else:
                value = json_copy(_resolve(doc, src, str(op["from"])))
            doc = _add(doc, parts, value, path)
        elif kind == "test":
            actual = _resolve(doc, parts, path)
            if actual != op["value"]:
                raise unprocessable(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed: {actual!r} != {op['value']!r}"
                )
        else:
            raise bad_request(f"unknown json patch operation {kind!r}")
    return doc


# --- strategic merge patch (subset) --------------------------------------------------------------

_DELETE = object()


def strategic_merge_patch(target: Any, patch: Any, view: View) -> Any:
    result = _smp(target, patch, view)
    return {} if result is _DELETE else result


def _smp(target: Any, patch: Any, view: View) -> Any:
    if not isinstance(patch, dict):
        return json_copy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: json_copy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return _DELETE
    if directive is not None:
        raise bad_request(f"unknown patch directive {directive!r}")
    out: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$retainKeys",) or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        child = view.field(key)
        if isinstance(value, dict):
            merged = _smp(out.get(key), value, child)
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _smp_list(out.get(key), value, child)
        else:
            out[key] = value
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(target: Any, patch: list[Any], view: View) -> list[Any]:
    kind, keys = view.list_type()
    current = list(target) if isinstance(target, list) else []
    if kind == "set":
        return current + [v for v in patch if v not in current]
    if kind != "map" or not keys:
        return [v for v in json_copy(patch) if not (isinstance(v, dict) and "$patch" in v)]
    merge_key = keys[0]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [json_copy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    items = view.items()
    for element in patch:
        if not isinstance(element, dict) or merge_key not in element:
            raise bad_request(f"map list element lacks its merge key {merge_key!r}: {element!r}")
        idx = next(
            (i for i, c in enumerate(current) if isinstance(c, dict) and c.get(merge_key) == element[merge_key]),
            None,
        )
        if element.get("$patch") == "delete":
            if idx is not None:
                del current[idx]
            continue
        if idx is None:
            current.append({k: json_copy(v) for k, v in element.items() if not k.startswith("$")})
        else:
            merged = _smp(current[idx], element, items)
            current[idx] = merged
    return current
