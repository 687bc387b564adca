"""What the server knows about the shape of objects: list semantics for merging and field
ownership, and, for custom resources, the structural schema's pruning, defaulting and validation.

Custom resources follow their CRD's openAPIV3Schema (`x-kubernetes-list-type`,
`x-kubernetes-list-map-keys`, `x-kubernetes-preserve-unknown-fields`, `default`, `nullable`,
`x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`). Built-in kinds have no schema
here: their associative lists (containers by name, ports, env, volumes, conditions,
ownerReferences...) come from a table of the patch-merge keys the API declares for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

from rollwise.testing.kubeapi.util import json_copy

# ObjectMeta fields the server keeps; anything else under `metadata` is dropped.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


class View:
    """The schema at one place in an object. The base class knows nothing: maps are granular,
    lists are atomic, unknown fields are kept."""

    def field(self, key: str) -> View:
        return ANY

    def items(self) -> View:
        return ANY

    def list_type(self) -> tuple[str, tuple[str, ...]]:
        """("atomic" | "set" | "map", map keys)."""
        return "atomic", ()


ANY = View()

_META_LISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "finalizers": ("set", ()),
    "ownerReferences": ("map", ("uid",)),
    "managedFields": ("atomic", ()),
}


class MetaView(View):
    """ObjectMeta, the same for every kind."""

    def __init__(self, name: str = "") -> None:
        self.name = name

    def field(self, key: str) -> View:
        return MetaView(key) if not self.name else ANY

    def list_type(self) -> tuple[str, tuple[str, ...]]:
        return _META_LISTS.get(self.name, ("atomic", ()))


# Associative lists of the built-in kinds: field name -> (list type, keys). Where one name means
# different things (ports), the parent decides.
_BUILTIN_LISTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "containers": ("map", ("name",)),
    "initContainers": ("map", ("name",)),
    "ephemeralContainers": ("map", ("name",)),
    "env": ("map", ("name",)),
    "volumes": ("map", ("name",)),
    "volumeMounts": ("map", ("mountPath",)),
    "volumeDevices": ("map", ("devicePath",)),
    "imagePullSecrets": ("map", ("name",)),
    "hostAliases": ("map", ("ip",)),
    "conditions": ("map", ("type",)),
    "topologySpreadConstraints": ("map", ("topologyKey", "whenUnsatisfiable")),
    "finalizers": ("set", ()),
    "ownerReferences": ("map", ("uid",)),
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


class BuiltinView(View):
    """A built-in kind: the patch-merge keys the Kubernetes API declares for its lists."""

    def __init__(self, path: tuple[str, ...] = ()) -> None:
        self.path = path

    def field(self, key: str) -> View:
        if not self.path and key == "metadata":
            return MetaView()
        return BuiltinView((*self.path, key))

    def items(self) -> View:
        return BuiltinView((*self.path, "[]"))

    def list_type(self) -> tuple[str, tuple[str, ...]]:
        if not self.path:
            return "atomic", ()
        name = self.path[-1]
        if name == "ports":
            in_container = len(self.path) >= 3 and self.path[-3] in _CONTAINER_LISTS
            return "map", ("containerPort", "protocol") if in_container else ("port", "protocol")
        return _BUILTIN_LISTS.get(name, ("atomic", ()))


class SchemaView(View):
    """A node of a structural openAPIV3Schema."""

    def __init__(self, node: dict[str, Any], root: bool = False) -> None:
        self.node = node
        self.root = root

    def field(self, key: str) -> View:
        if self.root and key == "metadata":
            return MetaView()
        props = self.node.get("properties")
        if isinstance(props, dict) and key in props:
            return SchemaView(props[key])
        extra = self.node.get("additionalProperties")
        if isinstance(extra, dict):
            return SchemaView(extra)
        if self.node.get("x-kubernetes-embedded-resource") and key == "metadata":
            return MetaView()
        return ANY

    def items(self) -> View:
        items = self.node.get("items")
        return SchemaView(items) if isinstance(items, dict) else ANY

    def list_type(self) -> tuple[str, tuple[str, ...]]:
        kind = self.node.get("x-kubernetes-list-type", "atomic")
        keys = tuple(self.node.get("x-kubernetes-list-map-keys") or ())
        return str(kind), keys


# --- pruning and defaulting of custom resources --------------------------------------------------


def _is_object_node(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" or "properties" in node or "additionalProperties" in node


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop the fields the schema does not know (as the server does for a structural schema).
    Returns the pruned copy and the dotted paths that were dropped."""
    dropped: list[str] = []
    out = json_copy(obj)
    root_keep = {"apiVersion", "kind", "metadata"}
    _prune_node(out, schema, "", dropped, root_keep)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in [k for k in meta if k not in OBJECT_META_FIELDS]:
            dropped.append(f"metadata.{key}")
            del meta[key]
    return out, dropped


def _prune_node(value: Any, node: dict[str, Any], path: str, dropped: list[str], keep: set[str]) -> None:
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return
    if isinstance(value, dict) and _is_object_node(node):
        props: dict[str, Any] = node.get("properties") or {}
        extra = node.get("additionalProperties")
        embedded = bool(node.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if key in keep or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            sub = f"{path}.{key}" if path else key
            if key in props:
                _prune_node(value[key], props[key], sub, dropped, set())
            elif isinstance(extra, dict):
                _prune_node(value[key], extra, sub, dropped, set())
            elif extra is True or node.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                dropped.append(sub)
                del value[key]
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            _prune_node(item, node["items"], f"{path}[{i}]", dropped, set())


def apply_defaults(obj: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill in `default` values where a field is absent (or null while not nullable), in place."""
    _default_node(obj, schema)
    return obj


def _default_node(value: Any, node: dict[str, Any]) -> None:
    if isinstance(value, dict):
        props: dict[str, Any] = node.get("properties") or {}
        for key, sub in props.items():
            if key in value and value[key] is None and not sub.get("nullable") and "default" in sub:
                del value[key]
            if key not in value and "default" in sub:
                value[key] = json_copy(sub["default"])
            if key in value:
                _default_node(value[key], sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in props:
                    _default_node(value[key], extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _default_node(item, node["items"])


# --- validation ----------------------------------------------------------------------------------


def _to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 (as Kubernetes reads it) in JSON Schema draft 4 terms."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "default"}
    if node.get("x-kubernetes-int-or-string") and "type" not in node and "anyOf" not in node:
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [*out["type"], "null"] if isinstance(out["type"], list) else [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out.pop("nullable", None)
    if node.get("x-kubernetes-embedded-resource") or "properties" in node:
        props = dict(out.get("properties", {}))
        if node.get("x-kubernetes-embedded-resource"):
            props.pop("metadata", None)
        out["properties"] = props
    return out


class Validator:
    """Structural validation of a custom resource against its version's schema (CEL rules,
    `x-kubernetes-validations`, are not evaluated)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        converted = _to_jsonschema(schema)
        props = dict(converted.get("properties", {}))
        props.pop("metadata", None)  # ObjectMeta is validated by the server itself
        converted["properties"] = props
        self._validator = jsonschema.Draft4Validator(converted)

    def errors(self, obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
        for err in sorted(self._validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            field = ""
            for part in err.absolute_path:
                field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
            yield field, err.message
