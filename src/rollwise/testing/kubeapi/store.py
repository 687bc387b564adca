"""The emulated API server's state and semantics, independent of HTTP.

Every write runs one pipeline: identity checks, optimistic concurrency, subresource isolation,
server-owned metadata, schema pruning/defaulting/validation (custom resources), metadata
validation, admission hooks, field ownership, generation, and a commit that bumps the global
resourceVersion and emits a watch event, unless nothing changed (a no-op write commits nothing).
Everything runs on one event loop without awaiting inside a write, so writes are atomic and watch
registration is consistent with the event log."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import random
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rollwise.testing.kubeapi import errors, fields, patches
from rollwise.testing.kubeapi.errors import ApiError
from rollwise.testing.kubeapi.registry import Resource, Version, builtin_resources, crd_problems, from_crd
from rollwise.testing.kubeapi.schema import apply_defaults, prune
from rollwise.testing.kubeapi.selectors import (
    FieldSelector,
    LabelSelector,
    label_key_problem,
    label_value_problem,
    selector_to_string,
)
from rollwise.testing.kubeapi.util import json_copy

Obj = dict[str, Any]
ObjKey = tuple[str, str]  # (namespace or "", name)
ResKey = tuple[str, str]  # (group, plural)

CRD_KEY: ResKey = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY: ResKey = ("", "namespaces")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# Admission hook: (operation "CREATE" | "UPDATE" | "DELETE", resource, old, new) -> a replacement
# object, or None to keep it; raise ApiError to refuse the request.
Hook = Callable[[str, Resource, Obj | None, Obj | None], Obj | None]

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATH_SEGMENT_KINDS = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    res: ResKey
    namespace: str
    old: Obj | None
    obj: Obj


@dataclass
class Write:
    """Who writes and how: the query parameters every write shares."""

    manager: str = "unknown"
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    force: bool = False


@dataclass
class Outcome:
    obj: Obj
    created: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Watcher:
    res: ResKey
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    bookmarks: bool
    queue: asyncio.Queue[Event | str | None] = field(default_factory=asyncio.Queue)


def _copy(obj: Obj) -> Obj:
    return json_copy(obj)


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _path_keys(path: str) -> list[str]:
    return [p for p in path.split(".") if p]


def _get_path(obj: Any, path: str) -> Any:
    node = obj
    for key in _path_keys(path):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _set_path(obj: Obj, path: str, value: Any) -> None:
    keys = _path_keys(path)
    node = obj
    for key in keys[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            node[key] = nxt
        node = nxt
    node[keys[-1]] = value


class Store:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime.datetime] | None = None,
        seed: int = 0,
        history_limit: int | None = 100_000,
        validate: bool = True,
        require_namespaces: bool = True,
    ) -> None:
        self.clock = clock or (lambda: datetime.datetime.now(tz=datetime.UTC))
        self.rng = random.Random(seed)
        self.history_limit = history_limit
        self.validate = validate
        self.require_namespaces = require_namespaces
        self.resources: dict[ResKey, Resource] = {}
        self.objects: dict[ResKey, dict[ObjKey, Obj]] = {}
        self.rv = 0
        self.compacted = 0
        self.log: deque[Event] = deque()
        self.hooks: list[Hook] = []
        self.on_commit: list[Callable[[Event], None]] = []
        self._watchers: set[_Watcher] = set()
        for res in builtin_resources():
            self.register(res)
        for ns in INITIAL_NAMESPACES:
            self.create(self.resources[NS_KEY], "v1", "", {"metadata": {"name": ns}}, Write(manager="kube-apiserver"))

    # --- registry --------------------------------------------------------------------------------

    def register(self, res: Resource) -> None:
        self.resources[res.key] = res
        self.objects.setdefault(res.key, {})

    def unregister(self, key: ResKey) -> None:
        self.resources.pop(key, None)
        self.objects.pop(key, None)
        for w in [w for w in self._watchers if w.res == key]:
            w.queue.put_nowait(None)

    def lookup(self, group: str, version: str, plural: str) -> tuple[Resource, Version]:
        res = self.resources.get((group, plural))
        ver = res.served(version) if res else None
        if res is None or ver is None:
            raise errors.no_resource()
        return res, ver

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group = api_version.rpartition("/")[0]
        for res in self.resources.values():
            if res.group == group and res.kind == kind:
                return res
        return None

    # --- helpers ---------------------------------------------------------------------------------

    def now(self) -> str:
        return self.clock().astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def render(self, res: Resource, version: str, obj: Obj) -> Obj:
        out = dict(obj)
        out["apiVersion"] = res.api_version(version)
        out["kind"] = res.kind
        return out

    def _scope(self, ver: Version, sub: str) -> Callable[[fields.Path], bool]:
        if not ver.status:
            return lambda p: True
        if sub == "status":
            return lambda p: p[0] == "f:status"
        return lambda p: p[0] != "f:status"

    def _key(self, res: Resource, namespace: str, name: str) -> ObjKey:
        return (namespace if res.namespaced else "", name)

    def _current(self, res: Resource, namespace: str, name: str) -> Obj:
        obj = self.objects.get(res.key, {}).get(self._key(res, namespace, name))
        if obj is None:
            raise errors.not_found(res.plural, res.group, name)
        return obj

    def _check_identity(self, res: Resource, ver: Version, body: Any, namespace: str) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON/YAML object")
        obj = _copy(body)
        want = res.api_version(ver.name)
        if obj.get("apiVersion") not in (None, "", want):
            raise errors.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({want})"
            )
        if obj.get("kind") not in (None, "", res.kind):
            raise errors.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind ({res.kind})"
            )
        obj["apiVersion"] = want
        obj["kind"] = res.kind
        meta = _meta(obj)
        if res.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _isolate(self, ver: Version, old: Obj | None, new: Obj, sub: str) -> Obj:
        """A main-resource write keeps the old status; a /status write keeps everything else."""
        if not ver.status:
            return new
        if sub == "status":
            assert old is not None
            out = _copy(old)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            return out
        out = dict(new)
        out.pop("status", None)
        if old is not None and "status" in old:
            out["status"] = old["status"]
        return out

    def _schema_pass(self, res: Resource, ver: Version, obj: Obj, write: Write, warnings: list[str]) -> Obj:
        if ver.schema is None:
            return obj
        name = _meta(obj).get("name") or _meta(obj).get("generateName") or ""
        pruned, dropped = prune(obj, ver.schema)
        if dropped and write.field_validation == "Strict":
            raise errors.bad_request(
                f"strict decoding error: {', '.join(f'unknown field {d!r}' for d in dropped)}".replace("'", '"')
            )
        if dropped and write.field_validation == "Warn":
            warnings.extend(f'unknown field "{d}"' for d in dropped)
        apply_defaults(pruned, ver.schema)
        validator = ver.validator()
        if self.validate and validator is not None:
            problems = list(validator.errors(pruned))
            if problems:
                raise errors.invalid(res.kind, res.group, name, problems)
        return pruned

    def _validate_meta(self, res: Resource, obj: Obj) -> None:
        meta = _meta(obj)
        name = meta.get("name") or ""
        problems: list[tuple[str, str]] = []
        if not isinstance(name, str) or not name:
            problems.append(("metadata.name", "Required value: name or generateName is required"))
        elif res.plural in _PATH_SEGMENT_KINDS:
            if name in (".", "..") or "/" in name or "%" in name:
                problems.append(("metadata.name", f"Invalid value: {name!r}: may not contain '/' or '%'"))
        elif res.key in (NS_KEY,):
            if len(name) > 63 or not _DNS_LABEL.match(name):
                problems.append(("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 label must be valid"))
        elif res.key == ("", "services"):
            if len(name) > 63 or not _DNS1035.match(name):
                problems.append(("metadata.name", f"Invalid value: {name!r}: a DNS-1035 label must be valid"))
        elif len(name) > 253 or not _SUBDOMAIN.match(name):
            problems.append(("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must be valid"))
        labels = meta.get("labels")
        if labels is not None and not isinstance(labels, dict):
            problems.append(("metadata.labels", "Invalid value: must be a map of strings"))
        for key, value in (labels or {}).items():
            if not isinstance(value, str):
                problems.append((f"metadata.labels.{key}", "Invalid value: must be a string"))
                continue
            why = label_key_problem(key) or label_value_problem(value)
            if why:
                problems.append((f"metadata.labels.{key}", f"Invalid value: {why}"))
        annotations = meta.get("annotations")
        for key, value in (annotations or {}).items():
            if not isinstance(value, str):
                problems.append((f"metadata.annotations.{key}", "Invalid value: must be a string"))
            elif label_key_problem(key):
                problems.append((f"metadata.annotations.{key}", f"Invalid value: {label_key_problem(key)}"))
        if len(json.dumps(annotations or {})) > 256 * 1024:
            problems.append(("metadata.annotations", "Too long: must have at most 262144 bytes"))
        for i, fin in enumerate(meta.get("finalizers") or []):
            if not isinstance(fin, str) or label_key_problem(fin):
                problems.append((f"metadata.finalizers[{i}]", f"Invalid value: {fin!r}: must be a qualified name"))
        for i, ref in enumerate(meta.get("ownerReferences") or []):
            if not isinstance(ref, dict) or not all(ref.get(k) for k in ("apiVersion", "kind", "name", "uid")):
                problems.append((f"metadata.ownerReferences[{i}]", "Required value: apiVersion, kind, name and uid"))
        controllers = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("controller")]
        if len(controllers) > 1:
            problems.append(("metadata.ownerReferences", "Invalid value: Only one reference can have Controller set"))
        if problems:
            raise errors.invalid(res.kind, res.group, name, problems)

    def _admit(self, op: str, res: Resource, old: Obj | None, new: Obj | None) -> Obj | None:
        for hook in self.hooks:
            replaced = hook(op, res, _copy(old) if old else None, _copy(new) if new else None)
            if replaced is not None:
                new = replaced
        return new

    def _spec_of(self, ver: Version, obj: Obj) -> Obj:
        skip = {"metadata", "status"} if ver.status else {"metadata"}
        return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}

    def _namespace_ok(self, res: Resource, namespace: str) -> None:
        if not res.namespaced or not self.require_namespaces:
            return
        ns = self.objects[NS_KEY].get(("", namespace))
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if _meta(ns).get("deletionTimestamp"):
            raise errors.forbidden(
                f'{res.plural} "{namespace}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated"
            )

    # --- commit and events -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self.log.append(event)
        if self.history_limit is not None:
            while len(self.log) > self.history_limit:
                self.compacted = self.log.popleft().rv
        for w in self._watchers:
            if w.res == event.res:
                w.queue.put_nowait(event)
        for callback in self.on_commit:
            callback(event)

    def _commit(self, res: Resource, old: Obj | None, new: Obj, kind: str) -> Obj:
        self.rv += 1
        stored = _copy(new)
        stored["apiVersion"] = res.api_version(res.storage.name)
        _meta(stored)["resourceVersion"] = str(self.rv)
        meta = _meta(stored)
        key = self._key(res, meta.get("namespace", ""), meta["name"])
        if kind == "DELETED":
            self.objects[res.key].pop(key, None)
        else:
            self.objects[res.key][key] = stored
        self._emit(Event(self.rv, kind, res.key, key[0], old, stored))
        return stored

    # --- reads -----------------------------------------------------------------------------------

    def get(self, res: Resource, ver: Version, namespace: str, name: str) -> Obj:
        return self.render(res, ver.name, self._current(res, namespace, name))

    def _selected(
        self, res: Resource, namespace: str | None, labels: LabelSelector, fsel: FieldSelector
    ) -> Iterator[tuple[ObjKey, Obj]]:
        for key in sorted(self.objects.get(res.key, {})):
            obj = self.objects[res.key][key]
            if namespace and key[0] != namespace:
                continue
            if labels.matches(_meta(obj).get("labels")) and fsel.matches(obj):
                yield key, obj

    def list_objects(
        self,
        res: Resource,
        ver: Version,
        namespace: str | None,
        labels: LabelSelector,
        fsel: FieldSelector,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        if resource_version not in (None, "", "0") and int(_rv(resource_version)) > self.rv:
            raise ApiError(504, "Timeout", f"Too large resource version: {resource_version}, current: {self.rv}")
        start: list[str] | None = None
        list_rv = self.rv
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, list_rv = list(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request(f"invalid continue token: {exc}") from None
            if list_rv < self.compacted:
                raise errors.gone("The provided continue parameter is too old to display a consistent list result.")
        items: list[Obj] = []
        remaining = 0
        last: ObjKey | None = None
        for key, obj in self._selected(res, namespace, labels, fsel):
            if start is not None and list(key) <= start:
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            item = self.render(res, ver.name, obj)
            if res.builtin:  # typed lists carry no kind/apiVersion on their items
                item.pop("apiVersion", None)
                item.pop("kind", None)
            items.append(item)
            last = key
        metadata: Obj = {"resourceVersion": str(list_rv)}
        if remaining and last is not None:
            token = json.dumps({"rv": list_rv, "start": list(last)})
            metadata["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            metadata["remainingItemCount"] = remaining
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version(ver.name),
            "metadata": metadata,
            "items": items,
        }

    # --- writes ----------------------------------------------------------------------------------

    def _generate_name(self, res: Resource, namespace: str, base: str) -> str:
        for _ in range(8):
            name = base[:58] + "".join(self.rng.choice(_GENERATE_ALPHABET) for _ in range(5))
            if self._key(res, namespace, name) not in self.objects[res.key]:
                return name
        raise errors.already_exists(res.plural, res.group, base)  # pragma: no cover - 27**5 names

    def create(
        self,
        res: Resource,
        version: str,
        namespace: str,
        body: Any,
        write: Write,
        *,
        applied: fields.Entry | None = None,
    ) -> Outcome:
        ver = res.served(version)
        if ver is None:
            raise errors.no_resource()
        warnings: list[str] = []
        obj = self._check_identity(res, ver, body, namespace)
        meta = _meta(obj)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        self._namespace_ok(res, namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(res, namespace, str(meta["generateName"]))
        obj = self._isolate(ver, None, obj, "")
        if res.key == NS_KEY:
            obj["status"] = {"phase": "Active"}
        obj = self._schema_pass(res, ver, obj, write, warnings)
        meta = _meta(obj)
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        meta["creationTimestamp"] = self.now()
        meta["generation"] = 1
        self._validate_meta(res, obj)
        if self._key(res, namespace, meta["name"]) in self.objects[res.key]:
            raise errors.already_exists(res.plural, res.group, meta["name"])
        admitted = self._admit("CREATE", res, None, obj)
        assert admitted is not None
        obj = admitted
        if res.key == CRD_KEY:
            obj = self._crd_created(obj)
        if applied is not None:
            entries = [applied]
        else:
            entries = fields.record_update(
                [],
                None,
                obj,
                ver.view(),
                write.manager,
                "",
                res.api_version(ver.name),
                self.now(),
                self._scope(ver, ""),
            )
        meta = _meta(obj)
        meta["managedFields"] = fields.write_entries(entries)
        if not meta["managedFields"]:
            del meta["managedFields"]
        if write.dry_run:
            return Outcome(self.render(res, ver.name, obj), created=True, warnings=warnings)
        stored = self._commit(res, None, obj, "ADDED")
        if res.key == CRD_KEY:
            self.register(from_crd(stored))
        return Outcome(self.render(res, ver.name, stored), created=True, warnings=warnings)

    def _write(
        self,
        res: Resource,
        ver: Version,
        old: Obj,
        candidate: Obj,
        sub: str,
        write: Write,
        warnings: list[str],
        entries: list[fields.Entry] | None = None,
    ) -> Obj:
        """The shared tail of update, patch and apply on an existing object."""
        meta = _meta(candidate)
        old_meta = _meta(old)
        if meta.get("name") not in (None, old_meta["name"]):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({old_meta['name']})"
            )
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != old_meta["resourceVersion"]:
            raise errors.conflict(res.plural, res.group, old_meta["name"], errors.STALE)
        new = self._isolate(ver, old, candidate, sub)
        new["apiVersion"] = res.api_version(res.storage.name)
        new["kind"] = res.kind
        meta = _meta(new)
        for key in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    res.kind,
                    res.group,
                    old_meta["name"],
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(added)!r}",
                        )
                    ],
                )
        new = self._schema_pass(res, ver, new, write, warnings)
        self._validate_meta(res, new)
        admitted = self._admit("UPDATE", res, old, new)
        assert admitted is not None
        new = admitted
        if res.key == CRD_KEY:
            problems = crd_problems(new)
            if problems:
                raise errors.invalid(res.kind, res.group, old_meta["name"], problems)
            new = self._crd_status(new)
        if entries is None:
            entries = fields.record_update(
                fields.read_entries(old),
                old,
                new,
                ver.view(),
                write.manager,
                sub,
                res.api_version(ver.name),
                self.now(),
                self._scope(ver, sub),
            )
        meta = _meta(new)
        meta["managedFields"] = fields.write_entries(entries)
        if not meta["managedFields"]:
            del meta["managedFields"]
        if self._spec_of(ver, new) != self._spec_of(ver, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # a no-op write: no new resourceVersion, no event
        if write.dry_run:
            return new
        stored = self._commit(res, old, new, "MODIFIED")
        if res.key == CRD_KEY:
            self.register(from_crd(stored))
        if _meta(stored).get("deletionTimestamp") and not _meta(stored).get("finalizers"):
            self._remove(res, stored, "Background")
        return stored

    def update(
        self, res: Resource, version: str, namespace: str, name: str, body: Any, sub: str, write: Write
    ) -> Outcome:
        ver = res.served(version)
        if ver is None:
            raise errors.no_resource()
        old = self._current(res, namespace, name)
        self._check_sub(res, ver, sub)
        candidate = self._check_identity(res, ver, body, namespace)
        if not _meta(candidate).get("resourceVersion") and not res.builtin:
            raise errors.invalid(
                res.kind,
                res.group,
                name,
                [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")],
            )
        warnings: list[str] = []
        stored = self._write(res, ver, old, candidate, sub, write, warnings)
        return Outcome(self.render(res, ver.name, stored), warnings=warnings)

    def _check_sub(self, res: Resource, ver: Version, sub: str) -> None:
        if sub == "status" and not ver.status:
            raise errors.no_resource()
        if sub not in ("", "status"):
            raise errors.no_resource()

    def patch(
        self,
        res: Resource,
        version: str,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        sub: str,
        write: Write,
    ) -> Outcome:
        ver = res.served(version)
        if ver is None:
            raise errors.no_resource()
        self._check_sub(res, ver, sub)
        if content_type == "application/apply-patch+yaml":
            return self._apply(res, ver, namespace, name, patch, sub, write)
        if write.force:
            raise errors.bad_request("force is not allowed for non-apply patch types")
        old = self._current(res, namespace, name)
        base = self.render(res, ver.name, old)
        if content_type == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
            candidate = patches.merge_patch(base, patch)
        elif content_type == "application/json-patch+json":
            candidate = patches.json_patch(base, patch)
        elif content_type == "application/strategic-merge-patch+json":
            if not res.builtin:
                raise errors.unsupported_media_type(content_type)
            if not isinstance(patch, dict):
                raise errors.bad_request("a strategic merge patch must be a JSON object")
            candidate = patches.strategic_merge_patch(base, patch, ver.view())
        else:
            raise errors.unsupported_media_type(content_type)
        if not isinstance(candidate, dict):
            raise errors.unprocessable("the patched object is not a JSON object")
        if candidate.get("apiVersion") != base["apiVersion"] or candidate.get("kind") != base["kind"]:
            raise errors.bad_request("a patch may not change apiVersion or kind")
        candidate = self._check_identity(res, ver, candidate, namespace)  # a deep copy
        meta = _meta(candidate)
        if meta.get("resourceVersion") == _meta(old)["resourceVersion"]:
            meta.pop("resourceVersion")  # untouched: unconditional
        warnings: list[str] = []
        stored = self._write(res, ver, old, candidate, sub, write, warnings)
        return Outcome(self.render(res, ver.name, stored), warnings=warnings)

    def _apply(
        self, res: Resource, ver: Version, namespace: str, name: str, config: Any, sub: str, write: Write
    ) -> Outcome:
        if not write.manager:
            raise errors.bad_request("PATCH requests with the apply content type need a fieldManager")
        config = self._check_identity(res, ver, config, namespace)
        meta = _meta(config)
        if meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        if ver.status:
            if sub == "status":
                config = {k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")}
            else:
                config.pop("status", None)
        key = self._key(res, namespace, name)
        old = self.objects[res.key].get(key)
        now = self.now()
        api_version = res.api_version(ver.name)
        view = ver.view()
        scope = self._scope(ver, sub)
        if old is None:
            if sub:
                raise errors.not_found(res.plural, res.group, name)
            entry = fields.Entry(write.manager, "Apply", api_version, now)
            entry.fields = fields.strip(fields.field_set(config, view), scope)
            config_meta = _meta(config)
            config_meta.pop("resourceVersion", None)
            return self.create(res, ver.name, namespace, config, write, applied=entry)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != _meta(old)["resourceVersion"]:
            raise errors.conflict(res.plural, res.group, name, errors.STALE)
        live = self.render(res, ver.name, old)
        merged, entries, conflicts = fields.apply(
            fields.read_entries(old), live, config, view, write.manager, sub, api_version, now, write.force, scope
        )
        if conflicts and not write.force:
            raise _apply_conflict(res, name, conflicts, old)
        _meta(merged).pop("resourceVersion", None)
        warnings: list[str] = []
        stored = self._write(res, ver, old, merged, sub, write, warnings, entries=entries)
        return Outcome(self.render(res, ver.name, stored), warnings=warnings)

    # --- scale subresource -----------------------------------------------------------------------

    def get_scale(self, res: Resource, ver: Version, namespace: str, name: str) -> Obj:
        if ver.scale is None:
            raise errors.no_resource()
        return self._scale_of(res, ver, self._current(res, namespace, name))

    def _scale_of(self, res: Resource, ver: Version, obj: Obj) -> Obj:
        assert ver.scale is not None
        meta = _meta(obj)
        status: Obj = {"replicas": _get_path(obj, ver.scale.status_replicas) or 0}
        if ver.scale.label_selector:
            selector = _get_path(obj, ver.scale.label_selector)
            if ver.scale.selector_is_object:
                selector = selector_to_string(selector) if isinstance(selector, dict) else None
            if selector:
                status["selector"] = selector
        scale_meta = {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        }
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": _get_path(obj, ver.scale.spec_replicas) or 0},
            "status": status,
        }

    def write_scale(
        self,
        res: Resource,
        ver: Version,
        namespace: str,
        name: str,
        body: Any,
        content_type: str | None,
        write: Write,
    ) -> Outcome:
        if ver.scale is None:
            raise errors.no_resource()
        old = self._current(res, namespace, name)
        current = self._scale_of(res, ver, old)
        if content_type is None:
            scale = body
        elif content_type == "application/merge-patch+json":
            scale = patches.merge_patch(current, body)
        elif content_type == "application/json-patch+json":
            scale = patches.json_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json":
            scale = patches.strategic_merge_patch(current, body, ver.view())
        else:
            raise errors.unsupported_media_type(content_type)
        if not isinstance(scale, dict):
            raise errors.bad_request("the body must be a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", name, [("spec.replicas", "Invalid value: must be >= 0")])
        candidate = self.render(res, ver.name, old)
        candidate["metadata"] = dict(candidate["metadata"])
        wanted = (scale.get("metadata") or {}).get("resourceVersion")
        if wanted in (None, "") or (content_type is not None and wanted == _meta(old)["resourceVersion"]):
            candidate["metadata"].pop("resourceVersion", None)
        else:
            candidate["metadata"]["resourceVersion"] = wanted
        _set_path(candidate, ver.scale.spec_replicas, replicas)
        warnings: list[str] = []
        stored = self._write(res, ver, old, candidate, "", write, warnings)
        return Outcome(self._scale_of(res, ver, stored), warnings=warnings)

    # --- deletion --------------------------------------------------------------------------------

    def delete(
        self,
        res: Resource,
        version: str,
        namespace: str,
        name: str,
        options: Obj | None,
        propagation: str | None,
        dry_run: bool = False,
    ) -> Obj:
        ver = res.served(version)
        if ver is None:
            raise errors.no_resource()
        old = self._current(res, namespace, name)
        options = options or {}
        pre = options.get("preconditions") or {}
        if pre.get("uid") not in (None, _meta(old)["uid"]):
            raise errors.conflict(
                res.plural,
                res.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {_meta(old)['uid']}",
            )
        if pre.get("resourceVersion") not in (None, _meta(old)["resourceVersion"]):
            raise errors.conflict(
                res.plural,
                res.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {_meta(old)['resourceVersion']}",
            )
        policy = propagation or options.get("propagationPolicy") or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"unknown propagationPolicy {policy!r}")
        self._admit("DELETE", res, old, None)
        if dry_run:
            return self.render(res, ver.name, old)
        return self.render(res, ver.name, self._delete_object(res, old, policy))

    def _delete_object(self, res: Resource, old: Obj, policy: str) -> Obj:
        meta = _meta(old)
        if meta.get("finalizers") or (res.key == NS_KEY and self._namespace_has_content(meta["name"])):
            if meta.get("deletionTimestamp"):
                return old
            new = _copy(old)
            nmeta = _meta(new)
            nmeta["deletionTimestamp"] = self.now()
            nmeta["deletionGracePeriodSeconds"] = 0
            if res.key == NS_KEY:
                new.setdefault("status", {})["phase"] = "Terminating"
            stored = self._commit(res, old, new, "MODIFIED")
            if res.key == NS_KEY:
                self._empty_namespace(meta["name"])
                return self.objects[NS_KEY].get(("", meta["name"]), stored)
            return stored
        return self._remove(res, old, policy)

    def _remove(self, res: Resource, old: Obj, policy: str) -> Obj:
        stored = self._commit(res, old, old, "DELETED")
        meta = _meta(old)
        if res.key == CRD_KEY:
            self._crd_deleted(old)
        if res.key == NS_KEY:
            self._empty_namespace(meta["name"])
        self._collect_garbage(meta["uid"], policy)
        ns = meta.get("namespace")
        if ns:
            self._reap_namespace(ns)
        return stored

    def _collect_garbage(self, uid: str, policy: str) -> None:
        """Background garbage collection of dependents, done at once (the real one is eventual)."""
        for key, res in list(self.resources.items()):
            for obj in list(self.objects.get(key, {}).values()):
                refs = _meta(obj).get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                current = self.objects[key].get(self._key(res, _meta(obj).get("namespace", ""), _meta(obj)["name"]))
                if current is None:
                    continue
                rest = [r for r in refs if r.get("uid") != uid]
                if policy == "Orphan" or rest:
                    new = _copy(current)
                    if rest:
                        _meta(new)["ownerReferences"] = rest
                    else:
                        _meta(new).pop("ownerReferences")
                    self._commit(res, current, new, "MODIFIED")
                else:
                    self._delete_object(res, current, "Background")

    def _namespace_has_content(self, namespace: str) -> bool:
        return any(
            k[0] == namespace for res in self.resources.values() if res.namespaced for k in self.objects[res.key]
        )

    def _empty_namespace(self, namespace: str) -> None:
        for res in list(self.resources.values()):
            if not res.namespaced:
                continue
            for key in [k for k in self.objects[res.key] if k[0] == namespace]:
                obj = self.objects[res.key].get(key)
                if obj is not None:
                    self._delete_object(res, obj, "Background")
        self._reap_namespace(namespace)

    def _reap_namespace(self, namespace: str) -> None:
        ns = self.objects[NS_KEY].get(("", namespace))
        if (
            ns is not None
            and _meta(ns).get("deletionTimestamp")
            and not _meta(ns).get("finalizers")
            and not self._namespace_has_content(namespace)
        ):
            self._commit(self.resources[NS_KEY], ns, ns, "DELETED")

    def delete_collection(
        self,
        res: Resource,
        version: str,
        namespace: str | None,
        labels: LabelSelector,
        fsel: FieldSelector,
        propagation: str | None,
        dry_run: bool = False,
    ) -> Obj:
        ver = res.served(version)
        if ver is None:
            raise errors.no_resource()
        listed = self.list_objects(res, ver, namespace, labels, fsel)
        for key, _ in list(self._selected(res, namespace, labels, fsel)):
            current = self.objects[res.key].get(key)
            if current is not None and not dry_run:
                self._admit("DELETE", res, current, None)
                self._delete_object(res, current, propagation or "Background")
        return listed

    # --- CRDs ------------------------------------------------------------------------------------

    def _crd_status(self, crd: Obj) -> Obj:
        """What the apiextensions controller writes: accepted names, Established, stored versions."""
        spec = crd.get("spec") or {}
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        old_status = crd.get("status") or {}
        stored = list(dict.fromkeys([*(old_status.get("storedVersions") or []), *storage]))
        now = self.now()
        crd = dict(crd)
        crd["status"] = {
            "acceptedNames": spec.get("names") or {},
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": _condition_time(old_status, "NamesAccepted", now),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": _condition_time(old_status, "Established", now),
                },
            ],
            "storedVersions": stored,
        }
        return crd

    def _crd_created(self, crd: Obj) -> Obj:
        problems = crd_problems(crd)
        if problems:
            raise errors.invalid(
                "CustomResourceDefinition", "apiextensions.k8s.io", _meta(crd).get("name", ""), problems
            )
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        if key in self.resources:
            raise errors.invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                _meta(crd)["name"],
                [("spec.names.plural", f"Invalid value: {key[1]!r}: the resource is already served")],
            )
        return self._crd_status(crd)

    def _crd_deleted(self, crd: Obj) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        res = self.resources.get(key)
        if res is None or res.builtin:
            return
        for obj in list(self.objects.get(key, {}).values()):
            self._commit(res, obj, obj, "DELETED")
        self.unregister(key)

    def add_crd(self, crd: Obj) -> Obj:
        """Create a CRD as a cluster admin would (it is then served at once)."""
        body = _copy(crd)
        body.pop("status", None)
        _meta(body).pop("resourceVersion", None)
        out = self.create(self.resources[CRD_KEY], "v1", "", body, Write(manager="kubectl"))
        return out.obj

    # --- watch -----------------------------------------------------------------------------------

    def bookmark(self) -> None:
        """Send a BOOKMARK with the current resourceVersion to every watch that allows them."""
        for w in self._watchers:
            if w.bookmarks:
                w.queue.put_nowait("BOOKMARK")

    def compact(self, rv: int | None = None) -> None:
        """Forget the event history up to `rv` (default: now): older watches and continue tokens
        then get 410 Gone, as after an etcd compaction."""
        rv = self.rv if rv is None else rv
        while self.log and self.log[0].rv <= rv:
            self.log.popleft()
        self.compacted = max(self.compacted, rv)

    def close_watches(self) -> None:
        for w in self._watchers:
            w.queue.put_nowait(None)

    async def watch(
        self,
        res: Resource,
        ver: Version,
        namespace: str | None,
        labels: LabelSelector,
        fsel: FieldSelector,
        resource_version: str | None,
        timeout: float | None,
        bookmarks: bool,
        send_initial_events: bool,
    ) -> AsyncIterator[Obj]:
        """Events after `resource_version`; with none (or "0"), the current state as ADDED first."""
        watcher = _Watcher(res.key, namespace, labels, fsel, bookmarks)
        initial: list[Obj] = []
        since = None if resource_version in (None, "") else int(_rv(resource_version))
        if since is not None and since != 0 and since < self.compacted:
            yield {
                "type": "ERROR",
                "object": errors.gone(f"too old resource version: {since} ({self.compacted})").status(),
            }
            return
        if since in (None, 0) or send_initial_events:
            for _, obj in self._selected(res, namespace, labels, fsel):
                initial.append({"type": "ADDED", "object": self.render(res, ver.name, obj)})
            if send_initial_events and bookmarks:
                initial.append(self._bookmark(res, ver, initial_end=True))
        else:
            for event in self.log:
                if event.rv > since and event.res == res.key:
                    out = self._transform(res, ver, watcher, event)
                    if out is not None:
                        initial.append(out)
        self._watchers.add(watcher)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            for out in initial:
                yield out
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    return
                if item is None:
                    return
                if item == "BOOKMARK":
                    yield self._bookmark(res, ver)
                    continue
                assert isinstance(item, Event)
                out = self._transform(res, ver, watcher, item)
                if out is not None:
                    yield out
        finally:
            self._watchers.discard(watcher)

    def _bookmark(self, res: Resource, ver: Version, initial_end: bool = False) -> Obj:
        meta: Obj = {"resourceVersion": str(self.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {
            "type": "BOOKMARK",
            "object": {"kind": res.kind, "apiVersion": res.api_version(ver.name), "metadata": meta},
        }

    def _transform(self, res: Resource, ver: Version, w: _Watcher, event: Event) -> Obj | None:
        """The event as this watch sees it: an object moving into its selection is ADDED, out of
        it DELETED (with the previous content and the new resourceVersion)."""
        if w.namespace and event.namespace != w.namespace:
            return None

        def selected(obj: Obj | None) -> bool:
            return obj is not None and w.labels.matches(_meta(obj).get("labels")) and w.fields.matches(obj)

        now_in = selected(event.obj) and event.type != "DELETED"
        was_in = selected(event.old) if event.type != "ADDED" else False
        if event.type == "DELETED":
            was_in = selected(event.obj)
        if now_in and was_in:
            kind, obj = "MODIFIED", event.obj
        elif now_in:
            kind, obj = "ADDED", event.obj
        elif was_in:
            kind = "DELETED"
            obj = _copy(event.old if event.type != "DELETED" and event.old is not None else event.obj)
            _meta(obj)["resourceVersion"] = str(event.rv)
        else:
            return None
        return {"type": kind, "object": self.render(res, ver.name, obj)}


def _rv(value: str) -> str:
    if not value.isdigit():
        raise errors.bad_request(f"invalid resourceVersion {value!r}")
    return value


def _condition_time(status: Obj, kind: str, default: str) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return str(cond.get("lastTransitionTime") or default)
    return default


def _apply_conflict(res: Resource, name: str, conflicts: list[tuple[str, fields.Path]], old: Obj) -> ApiError:
    api_versions = {e.manager: e.api_version for e in fields.read_entries(old)}
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{manager}" using {api_versions.get(manager, "")}',
            "field": fields.describe(path),
        }
        for manager, path in conflicts
    ]
    lines = "\n".join(f"- {c['message']}: {c['field']}" for c in causes)
    n = len(causes)
    return ApiError(
        409,
        "Conflict",
        f"Apply failed with {n} conflict{'s' if n != 1 else ''}: {lines}",
        {"name": name, "group": res.group, "kind": res.plural, "causes": causes},
    )
