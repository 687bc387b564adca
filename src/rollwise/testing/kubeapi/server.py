"""The HTTP face of the emulator: a kmock `KubernetesEmulator` whose request handling is replaced by
the `Store`'s API semantics, while kmock's server, request log and reaction DSL stay usable (a test
can still inject a fault with `server['patch', kmock.resource('apps/v1/deployments')] << 500`;
such a reaction wins and the store is not touched)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import rendering
from typing_extensions import override

from rollwise.testing.kubeapi import errors
from rollwise.testing.kubeapi.errors import ApiError
from rollwise.testing.kubeapi.registry import Resource, version_priority
from rollwise.testing.kubeapi.selectors import FieldSelector, LabelSelector
from rollwise.testing.kubeapi.store import Event, Outcome, Store, Write
from rollwise.testing.kubeapi.util import json_copy

KUBERNETES_VERSION = (1, 33)

# The Namespace resource itself: kmock's path parser reads /api/v1/namespaces/x as "namespace x"
# (and fails on /api/v1/namespaces), so these paths are parsed here.
_NAMESPACES = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?)?/?$")


@dataclass(frozen=True)
class AuditRecord:
    """One API request as RBAC sees it."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    user_agent: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name, "").lower() in ("true", "1")


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid integer {value!r}") from None


def _verb(request: rendering.Request) -> str:
    """The RBAC verb of a request."""
    method = str(request.method.value).upper()
    if method == "GET":
        if _flag(request.params, "watch"):
            return "watch"
        return "get" if request.name is not None else "list"
    if method == "DELETE":
        return "delete" if request.name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _is_resource_request(request: rendering.Request) -> bool:
    r = request.resource
    return r is not None and r.plural is not None and r.version is not None


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """An emulated Kubernetes API server. Use `serve()` to run it on a local port."""

    store: Store = attrs.field(factory=Store)
    keep_history: bool = True  # mirror every version into kmock's `objects` view (for assertions)
    audit: list[AuditRecord] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        (self.fallback**1)[_is_resource_request] << self._serve_resource
        for path in ("/healthz", "/readyz", "/livez"):
            (self.fallback**1)[f"get {path}"] << b"ok"
        self.store.on_commit.append(self._mirror)

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        m = _NAMESPACES.match(raw_request.path)
        if m is None:
            return await super().__call__(raw_request)
        body = await raw_request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        request = rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=body.decode("utf-8", "replace"),
            action=None,
            resource=kmock.resource("", "v1", "namespaces"),
            namespace=None,
            name=m.group("name"),
            subresource=m.group("sub"),
        )
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:  # as RawHandler.__call__ does: record it, answer 500
            if not self._errors:
                raise
            self._errors[-1].append(exc)
            return await self._render_error(exc)

    @override
    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # Skip KubernetesEmulator._handle: its naive state tracking is replaced by the Store.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    # --- conveniences for tests ------------------------------------------------------------------

    def add_crds(self, crds: Iterable[dict[str, Any]]) -> None:
        for crd in crds:
            self.store.add_crd(crd)

    def get_object(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        res = self.store.by_kind(api_version, kind)
        if res is None:
            raise KeyError(f"no resource for {api_version} {kind}")
        obj = self.store.objects[res.key].get((namespace or "" if res.namespaced else "", name))
        version = api_version.rpartition("/")[2]
        return json_copy(self.store.render(res, version, obj)) if obj is not None else None

    def _mirror(self, event: Event) -> None:
        res = self.store.resources.get(event.res)
        if res is None:
            return
        key = (
            kmock.resource(res.group, res.storage.name, res.plural),
            event.namespace or None,
            event.obj["metadata"]["name"],
        )
        objects = self.objects
        if event.type == "DELETED":
            if key in objects:
                objects[key].delete()
                if not self.keep_history:
                    objects[key].history[:] = [None]
        elif key not in objects:
            objects[key] = event.obj
        elif self.keep_history:
            objects[key].history.append(event.obj)
        else:
            objects[key].history[:] = [event.obj]

    # --- responses -------------------------------------------------------------------------------

    @staticmethod
    def _respond(code: int, payload: Any, warnings: list[str] | None = None) -> rendering.Response:
        # kmock copies a returned Response's status and headers onto the (shared) reaction; every
        # response sets the same header names so that nothing leaks from one request to the next.
        warning = ", ".join(f'299 - "{w.replace(chr(34), chr(39))}"' for w in warnings) if warnings else None
        return rendering.Response(
            status=code,
            payload=payload,
            headers={"Content-Type": "application/json", "Warning": warning},
        )

    async def _serve_resource(self, request: rendering.Request) -> rendering.Response:
        verb = _verb(request)
        code = 200
        try:
            response = self._dispatch(request)
            code = response.status or 200
            return response
        except ApiError as exc:
            code = exc.code
            return self._respond(exc.code, exc.status())
        finally:
            r = request.resource
            assert r is not None
            self.audit.append(
                AuditRecord(
                    verb,
                    r.group or "",
                    r.plural or "",
                    request.subresource or "",
                    request.namespace or "",
                    request.name or "",
                    code,
                    _header(request.headers, "User-Agent") or "",
                )
            )

    def _body(self, request: rendering.Request, content_type: str | None) -> Any:
        if not request.body:
            return None
        try:
            if content_type == "application/apply-patch+yaml":
                return yaml.safe_load(request.body)
            return json.loads(request.body)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"the request body is not valid JSON/YAML: {exc}") from None

    def _write_options(self, request: rendering.Request, apply: bool = False) -> Write:
        params = request.params
        manager = params.get("fieldManager")
        if manager is None and not apply:
            agent = _header(request.headers, "User-Agent") or "unknown"
            manager = agent.split("/")[0] or "unknown"
        if manager is not None and len(manager) > 128:
            raise errors.invalid("", "", "", [("fieldManager", "Too long: may not be more than 128 bytes")])
        dry_run = params.get("dryRun")
        if dry_run not in (None, "", "All"):
            raise errors.bad_request(f"unsupported dryRun value {dry_run!r}: only 'All' is supported")
        validation = params.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(f"invalid fieldValidation {validation!r}: use Ignore, Warn or Strict")
        force = params.get("force")
        if force not in (None, "", "true", "false"):
            raise errors.bad_request(f"invalid force {force!r}")
        return Write(
            manager=manager or "", dry_run=dry_run == "All", field_validation=validation, force=force == "true"
        )

    def _dispatch(self, request: rendering.Request) -> rendering.Response:
        r = request.resource
        assert r is not None and r.version is not None and r.plural is not None
        res, ver = self.store.lookup(r.group or "", r.version, r.plural)
        ns, name, sub = request.namespace, request.name, request.subresource or ""
        if (ns is not None and not res.namespaced) or (res.namespaced and name is not None and ns is None):
            raise errors.no_resource()
        params = request.params
        method = str(request.method.value).upper()
        content_type = (_header(request.headers, "Content-Type") or "application/json").split(";")[0].strip()
        store = self.store

        if method == "GET":
            labels = LabelSelector.parse(params.get("labelSelector"))
            fsel = FieldSelector.parse(params.get("fieldSelector"), res.group, res.plural)
            if _flag(params, "watch"):
                if name is not None:
                    if sub:
                        raise errors.no_resource()
                    named = FieldSelector.parse(f"metadata.name={name}", res.group, res.plural)
                    fsel = FieldSelector(fsel.requirements + named.requirements)
                return self._watch(request, res, labels, fsel)
            if name is None:
                listed = store.list_objects(
                    res,
                    ver,
                    ns,
                    labels,
                    fsel,
                    limit=_int_param(params, "limit"),
                    continue_token=params.get("continue") or None,
                    resource_version=params.get("resourceVersion"),
                )
                return self._respond(200, listed)
            if sub == "scale":
                return self._respond(200, store.get_scale(res, ver, ns or "", name))
            if sub not in ("", "status") or (sub == "status" and not ver.status):
                raise errors.no_resource()
            return self._respond(200, store.get(res, ver, ns or "", name))

        if method == "POST":
            if name is not None or sub:
                raise errors.method_not_allowed()
            if res.namespaced and ns is None:
                raise errors.no_resource()
            out = store.create(res, ver.name, ns or "", self._body(request, content_type), self._write_options(request))
            return self._outcome(out, 201)

        if method == "PUT":
            if name is None:
                raise errors.method_not_allowed()
            body = self._body(request, content_type)
            if sub == "scale":
                return self._outcome(
                    store.write_scale(res, ver, ns or "", name, body, None, self._write_options(request))
                )
            out = store.update(res, ver.name, ns or "", name, body, sub, self._write_options(request))
            return self._outcome(out)

        if method == "PATCH":
            if name is None:
                raise errors.method_not_allowed()
            apply = content_type == "application/apply-patch+yaml"
            body = self._body(request, content_type)
            options = self._write_options(request, apply=apply)
            if sub == "scale":
                if apply:
                    raise errors.unsupported_media_type(content_type + " on the scale subresource")
                return self._outcome(store.write_scale(res, ver, ns or "", name, body, content_type, options))
            out = store.patch(res, ver.name, ns or "", name, body, content_type, sub, options)
            return self._outcome(out, 201 if out.created else 200)

        if method == "DELETE":
            if sub:
                raise errors.method_not_allowed()
            body = self._body(request, content_type)
            delete_options = body if isinstance(body, dict) else {}
            dry_run = self._write_options(request).dry_run
            propagation = params.get("propagationPolicy")
            if name is None:
                labels = LabelSelector.parse(params.get("labelSelector"))
                fsel = FieldSelector.parse(params.get("fieldSelector"), res.group, res.plural)
                listed = store.delete_collection(res, ver.name, ns, labels, fsel, propagation, dry_run)
                return self._respond(200, listed)
            return self._respond(200, store.delete(res, ver.name, ns or "", name, delete_options, propagation, dry_run))

        raise errors.method_not_allowed()

    def _outcome(self, out: Outcome, code: int = 200) -> rendering.Response:
        return self._respond(code, out.obj, out.warnings)

    def _watch(
        self, request: rendering.Request, res: Resource, labels: LabelSelector, fsel: FieldSelector
    ) -> rendering.Response:
        params = request.params
        r = request.resource
        assert r is not None and r.version is not None
        ver = res.served(r.version)
        assert ver is not None
        rv = params.get("resourceVersion")
        if rv not in (None, "") and not rv.isdigit():
            raise errors.bad_request(f"invalid resourceVersion {rv!r}")
        timeout = _int_param(params, "timeoutSeconds")
        events = self.store.watch(
            res,
            ver,
            request.namespace,
            labels,
            fsel,
            rv,
            float(timeout) if timeout is not None else None,
            _flag(params, "allowWatchBookmarks"),
            _flag(params, "sendInitialEvents"),
        )

        async def stream() -> AsyncIterator[Any]:
            yield b""  # send the headers now: a watch with nothing to report is still open
            async for event in events:
                yield event

        return self._respond(200, stream())

    # --- discovery -------------------------------------------------------------------------------

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for res in self.store.resources.values():
            for v in res.versions:
                if v.served:
                    groups.setdefault(res.group, set()).add(v.name)
        return {g: sorted(vs, key=version_priority) for g, vs in groups.items()}

    @override
    async def _serve_root(self, request: rendering.Request) -> rendering.Payload:
        paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/readyz", "/livez"}
        for group, versions in self._groups().items():
            if group:
                paths.add(f"/apis/{group}")
                paths.update(f"/apis/{group}/{v}" for v in versions)
        return self._respond(200, {"paths": sorted(paths)})

    @override
    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        major, minor = KUBERNETES_VERSION
        info = {
            "major": str(major),
            "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.0-rollwise-emulator",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "",
            "compiler": "python",
            "platform": "linux/amd64",
        }
        return self._respond(200, info)

    @override
    async def _serve_api(self, request: rendering.Request) -> rendering.Payload:
        return self._respond(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})

    def _group_json(self, group: str, versions: list[str]) -> dict[str, Any]:
        items = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": items, "preferredVersion": items[0]}

    @override
    async def _serve_apis(self, request: rendering.Request) -> rendering.Payload:
        groups = [self._group_json(g, vs) for g, vs in sorted(self._groups().items()) if g]
        return self._respond(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    @override
    async def _serve_group(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        group = request.resource.group or ""
        versions = self._groups().get(group)
        if not group or not versions:
            return self._respond(404, errors.no_resource().status())
        return self._respond(200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_json(group, versions)})

    @override
    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        group, version = request.resource.group or "", request.resource.version or ""
        entries: list[dict[str, Any]] = []
        for res in sorted(self.store.resources.values(), key=lambda r: r.plural):
            ver = res.served(version) if res.group == group else None
            if ver is None:
                continue
            entries.append(
                {
                    "name": res.plural,
                    "singularName": res.singular,
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": res.verbs,
                    "shortNames": list(res.short_names),
                    "categories": list(res.categories),
                }
            )
            if ver.status:
                entries.append(
                    {
                        "name": f"{res.plural}/status",
                        "singularName": "",
                        "namespaced": res.namespaced,
                        "kind": res.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if ver.scale is not None:
                entries.append(
                    {
                        "name": f"{res.plural}/scale",
                        "singularName": "",
                        "namespaced": res.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        if not entries:
            return self._respond(404, errors.no_resource().status())
        gv = f"{group}/{version}" if group else version
        return self._respond(
            200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}
        )


@contextlib.asynccontextmanager
async def serve(server: ApiServer | None = None, **kwargs: Any) -> AsyncIterator[ApiServer]:
    """Run an emulated API server on 127.0.0.1 (a free port) for the duration of the block.
    It serves from the current event loop: the code under test must run on the same loop."""
    server = server if server is not None else ApiServer(**kwargs)
    async with server, kmock.Server(server):
        try:
            yield server
        finally:
            server.store.close_watches()
