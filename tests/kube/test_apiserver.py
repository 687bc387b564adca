"""The emulated API server behaves as the Kubernetes API documents it, seen through real clients
(lightkube's async client; plain HTTP where lightkube exposes nothing, e.g. discovery).

References: API concepts (resourceVersion, watch, bookmarks, lists), the object metadata docs
(uid, generation, generateName, finalizers, owner references), server-side apply, label and field
selectors, and the CRD docs (status/scale subresources, pruning, defaulting, versions)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.operators import in_, not_equal, not_exists
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import CascadeType, OnErrorAction, OnErrorResult, PatchType

from rollwise.testing.kubeapi import ApiServer
from tests.kube.helpers import HTTPRoute, Rollout, VirtualService, VirtualServiceV1beta1, rollout, wait_until
from tests.kube.test_selectors import LABELS, SELECTOR_CASES

pytestmark = pytest.mark.asyncio  # every test here is async: the emulator serves from the test's loop


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, labels=labels), data=data or None)


def deployment(name: str, containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers or [{"name": "app", "image": "example/app:1.0"}]},
            },
        },
    }


async def api_error(coro: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        await coro
    return info.value


def rv(obj: Any) -> int:
    return int(obj.metadata.resourceVersion)


# --- identity: uid, resourceVersion, creationTimestamp, generation -------------------------------


async def test_create_stamps_server_owned_metadata(client: AsyncClient) -> None:
    a = await client.create(configmap("a", k="v"))
    b = await client.create(configmap("b", k="v"))
    for obj in (a, b):
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", obj.metadata.uid)
        assert obj.metadata.creationTimestamp is not None
        assert obj.metadata.generation == 1
        assert obj.metadata.namespace == "default"
    assert a.metadata.uid != b.metadata.uid
    assert rv(b) > rv(a)
    # The client cannot choose what the server owns.
    error = await api_error(
        client.create(ConfigMap(metadata=ObjectMeta(name="c", resourceVersion="5")), namespace="default")
    )
    assert error.status.code == 400


async def test_every_write_gets_a_new_monotonic_resource_version_and_noop_writes_none(client: AsyncClient) -> None:
    seen = [rv(await client.create(configmap("a", k="1")))]
    seen.append(rv(await client.create(rollout("r"))))  # one counter across all resources
    seen.append(rv(await client.patch(ConfigMap, "a", {"data": {"k": "2"}}, patch_type=PatchType.MERGE)))
    seen.append(rv(await client.patch(Rollout, "r", {"spec": {"replicas": 3}}, patch_type=PatchType.MERGE)))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    # A patch that changes nothing is not a write: same resourceVersion, no watch event.
    same = await client.patch(ConfigMap, "a", {"data": {"k": "2"}}, patch_type=PatchType.MERGE)
    assert rv(same) == seen[2]
    assert rv(await client.get(ConfigMap, "a")) == seen[2]


async def test_generation_counts_spec_changes_only(client: AsyncClient) -> None:
    created = await client.create(rollout("r"))
    assert created.metadata.generation == 1
    labelled = await client.patch(Rollout, "r", {"metadata": {"labels": {"team": "a"}}}, patch_type=PatchType.MERGE)
    assert labelled.metadata.generation == 1 and rv(labelled) > rv(created)
    status = await client.patch(Rollout.Status, "r", {"status": {"phase": "Progressing"}}, patch_type=PatchType.MERGE)
    assert status.metadata.generation == 1 and status.status["phase"] == "Progressing"
    changed = await client.patch(Rollout, "r", {"spec": {"replicas": 5}}, patch_type=PatchType.MERGE)
    assert changed.metadata.generation == 2
    again = await client.patch(Rollout, "r", {"spec": {"replicas": 6}}, patch_type=PatchType.MERGE)
    assert again.metadata.generation == 3


# --- optimistic concurrency ----------------------------------------------------------------------


async def test_stale_resource_version_is_a_409_conflict(client: AsyncClient) -> None:
    first = await client.create(configmap("a", k="1"))
    await client.patch(ConfigMap, "a", {"data": {"k": "2"}}, patch_type=PatchType.MERGE)  # someone else writes
    first.data = {"k": "mine"}
    error = await api_error(client.replace(first))
    assert (error.status.code, error.status.reason) == (409, "Conflict")
    assert "the object has been modified" in error.status.message
    stale = {"metadata": {"resourceVersion": first.metadata.resourceVersion}, "data": {"k": "mine"}}
    error = await api_error(client.patch(ConfigMap, "a", stale, patch_type=PatchType.MERGE))
    assert error.status.code == 409
    # With the current version the same update goes through; the stale attempts changed nothing.
    current = await client.get(ConfigMap, "a")
    assert current.data == {"k": "2"}
    current.data = {"k": "mine"}
    assert (await client.replace(current)).data == {"k": "mine"}


async def test_concurrent_updates_from_one_version_let_exactly_one_win(client: AsyncClient) -> None:
    base = await client.create(configmap("a", k="0"))

    async def update(i: int) -> str:
        mine = ConfigMap(
            metadata=ObjectMeta(name="a", resourceVersion=base.metadata.resourceVersion), data={"k": f"writer-{i}"}
        )
        try:
            await client.replace(mine)
        except ApiError as exc:
            return str(exc.status.code)
        return "ok"

    outcomes = await asyncio.gather(*(update(i) for i in range(8)))
    assert sorted(outcomes) == ["409"] * 7 + ["ok"]


async def test_json_patch_test_operation_on_a_stale_version_is_a_422(client: AsyncClient) -> None:
    created = await client.create(configmap("a", k="1"))
    await client.patch(ConfigMap, "a", {"data": {"k": "2"}}, patch_type=PatchType.MERGE)
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": created.metadata.resourceVersion},
        {"op": "replace", "path": "/data/k", "value": "3"},
    ]
    error = await api_error(client.patch(ConfigMap, "a", ops, patch_type=PatchType.JSON))
    assert error.status.code == 422  # what kopf relies on to retry
    ops[0]["value"] = (await client.get(ConfigMap, "a")).metadata.resourceVersion
    assert (await client.patch(ConfigMap, "a", ops, patch_type=PatchType.JSON)).data == {"k": "3"}


async def test_put_replaces_the_whole_object(client: AsyncClient) -> None:
    await client.create(configmap("a", k="1", other="x"))
    current = await client.get(ConfigMap, "a")
    current.data = {"k": "2"}
    replaced = await client.replace(current)
    assert replaced.data == {"k": "2"}
    # Built-in kinds accept an unconditional update (no resourceVersion)...
    assert (await client.replace(configmap("a", k="3"))).data == {"k": "3"}
    # ...custom resources do not.
    await client.create(rollout("r"))
    error = await api_error(client.replace(rollout("r", replicas=4)))
    assert error.status.code == 422 and "resourceVersion" in error.status.message
    error = await api_error(client.replace(configmap("missing", k="1")))
    assert error.status.code == 404


# --- selectors -----------------------------------------------------------------------------------


async def test_list_and_watch_filter_by_label_selectors(client: AsyncClient, http: httpx.AsyncClient) -> None:
    for name, labels in LABELS.items():
        await client.create(configmap(name, labels))
    wanted = {"a": "b", "c": not_equal("d"), "e": in_(["x", "y"]), "f": not_exists()}
    listed = [cm.metadata.name async for cm in client.list(ConfigMap, labels=wanted)]
    assert listed == ["x2"]
    for selector, expected in SELECTOR_CASES:
        rsp = await http.get("/api/v1/namespaces/default/configmaps", params={"labelSelector": selector})
        assert {i["metadata"]["name"] for i in rsp.json()["items"]} == expected, selector
    rsp = await http.get("/api/v1/namespaces/default/configmaps", params={"labelSelector": "a in (x"})
    assert rsp.status_code == 400 and rsp.json()["reason"] == "BadRequest"

    # A watch sees an object enter its selection as ADDED and leave it as DELETED.
    async def watch() -> AsyncIterator[tuple[str, str]]:
        async for kind, obj in client.watch(ConfigMap, labels={"tier": "web"}, resource_version="0"):
            yield kind, obj.metadata.name

    events = watch()
    await client.patch(ConfigMap, "x1", {"metadata": {"labels": {"tier": "web"}}}, patch_type=PatchType.MERGE)
    async with asyncio.timeout(5):
        assert await anext(events) == ("ADDED", "x1")
        await client.patch(ConfigMap, "x1", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
        assert await anext(events) == ("MODIFIED", "x1")
        await client.patch(ConfigMap, "x2", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)  # not selected
        await client.patch(ConfigMap, "x1", {"metadata": {"labels": {"tier": None}}}, patch_type=PatchType.MERGE)
        assert await anext(events) == ("DELETED", "x1")
    await events.aclose()


async def test_field_selectors(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await client.create(configmap("a"))
    await client.create(configmap("b"))
    listed = [cm.metadata.name async for cm in client.list(ConfigMap, fields={"metadata.name": "b"})]
    assert listed == ["b"]
    listed = [cm.metadata.name async for cm in client.list(ConfigMap, fields={"metadata.name": not_equal("b")})]
    assert listed == ["a"]
    rsp = await http.get("/api/v1/namespaces/default/configmaps", params={"fieldSelector": "data.k=v"})
    assert rsp.status_code == 400 and "field label not supported" in rsp.json()["message"]


# --- status subresource --------------------------------------------------------------------------


async def test_status_subresource_isolation(client: AsyncClient) -> None:
    created = await client.create(Rollout(metadata=ObjectMeta(name="r"), spec=rollout("r").spec, status={"phase": "X"}))
    assert created.status is None  # status in a create is ignored
    # A main-resource write ignores status...
    main = await client.patch(
        Rollout, "r", {"spec": {"replicas": 7}, "status": {"phase": "Y"}}, patch_type=PatchType.MERGE
    )
    assert main.spec["replicas"] == 7 and main.status is None
    # ...and a /status write changes only status.
    status = await client.patch(
        Rollout.Status,
        "r",
        {"spec": {"replicas": 1}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "Progressing"}},
        patch_type=PatchType.MERGE,
    )
    assert status.spec["replicas"] == 7 and status.status["phase"] == "Progressing"  # (+ schema defaults)
    assert not status.metadata.labels
    # PUT on /status with a full object: again only status.
    current = (await client.get(Rollout, "r")).to_dict()
    current["spec"]["replicas"] = 2
    current["status"] = {"phase": "Healthy"}
    replaced = await client.replace(Rollout.Status.from_dict(current), "r")
    assert replaced.spec["replicas"] == 7 and replaced.status["phase"] == "Healthy"
    # A PUT of the main resource keeps the status it had.
    current = (await client.get(Rollout, "r")).to_dict()
    current["status"] = {"phase": "Degraded"}
    assert (await client.replace(Rollout.from_dict(current))).status["phase"] == "Healthy"


async def test_status_subresource_of_a_builtin_kind(client: AsyncClient) -> None:
    await client.create(Deployment.from_dict(deployment("web")))
    patched = await client.patch(
        Deployment.Status, "web", {"status": {"replicas": 3, "readyReplicas": 2}}, patch_type=PatchType.MERGE
    )
    assert patched.status.readyReplicas == 2 and patched.metadata.generation == 1
    main = await client.patch(Deployment, "web", {"status": {"readyReplicas": 0}}, patch_type=PatchType.MERGE)
    assert main.status.readyReplicas == 2


# --- server-side apply ---------------------------------------------------------------------------


def managers(obj: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.manager, m.operation): m.fieldsV1 for m in obj.metadata.managedFields or []}


async def test_apply_creates_an_absent_object(client: AsyncClient) -> None:
    created = await client.apply(configmap("a", k="1"), field_manager="alice")
    assert created.data == {"k": "1"} and created.metadata.uid
    assert managers(created) == {("alice", "Apply"): {"f:data": {"f:k": {}}}}
    # Applying the same configuration again is a no-op.
    assert rv(await client.apply(configmap("a", k="1"), field_manager="alice")) == rv(created)


async def test_apply_merges_and_reports_conflicting_ownership(client: AsyncClient) -> None:
    await client.apply(configmap("a", {"app": "web"}, k="1"), field_manager="alice")
    # bob sets a field nobody owns: merged, alice's fields stay.
    merged = await client.apply(configmap("a", other="2"), field_manager="bob")
    assert merged.data == {"k": "1", "other": "2"} and merged.metadata.labels == {"app": "web"}
    # bob changes a field alice owns: conflict, nothing written.
    error = await api_error(client.apply(configmap("a", k="changed"), field_manager="bob"))
    assert (error.status.code, error.status.reason) == (409, "Conflict")
    assert 'conflict with "alice"' in error.status.message and ".data.k" in error.status.message
    assert (await client.get(ConfigMap, "a")).data["k"] == "1"
    # The same value is no conflict: the field becomes shared.
    shared = await client.apply(configmap("a", k="1", other="2"), field_manager="bob")
    assert managers(shared)[("bob", "Apply")] == {"f:data": {"f:k": {}, "f:other": {}}}
    # force=true takes the field; alice now conflicts when she applies her old value.
    forced = await client.apply(configmap("a", k="bob's", other="2"), field_manager="bob", force=True)
    assert forced.data["k"] == "bob's"
    assert "f:k" not in managers(forced)[("alice", "Apply")].get("f:data", {})
    error = await api_error(client.apply(configmap("a", {"app": "web"}, k="1"), field_manager="alice"))
    assert error.status.code == 409


async def test_apply_removes_fields_its_manager_stopped_applying(client: AsyncClient) -> None:
    await client.apply(configmap("a", {"x": "1", "y": "2"}), field_manager="alice")
    await client.patch(ConfigMap, "a", {"metadata": {"labels": {"z": "3"}}}, patch_type=PatchType.MERGE)
    applied = await client.apply(configmap("a", {"x": "1"}), field_manager="alice")
    assert applied.metadata.labels == {"x": "1", "z": "3"}  # y removed, z (owned by "tests") kept


async def test_apply_merges_associative_lists_by_key(client: AsyncClient) -> None:
    app = {"name": "app", "image": "example/app:1.0"}
    sidecar = {"name": "proxy", "image": "example/proxy:1.0"}
    await client.apply(Deployment.from_dict(deployment("web", [app])), field_manager="alice")
    both = await client.apply(Deployment.from_dict(deployment("web", [sidecar])), field_manager="bob")
    assert [c.name for c in both.spec.template.spec.containers] == ["app", "proxy"]
    fields = managers(both)[("bob", "Apply")]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(fields) == {'k:{"name":"proxy"}'}
    # The container alice stops applying goes away; bob's stays.
    alone = await client.apply(Deployment.from_dict(deployment("web", [sidecar])), field_manager="alice")
    assert [c.name for c in alone.spec.template.spec.containers] == ["proxy"]


async def test_apply_to_status_and_a_custom_schema_list_map(client: AsyncClient) -> None:
    crd = widget_crd()
    await client.create(CustomResourceDefinition.from_dict(crd))
    Widget = create_namespaced_resource("example.com", "v1", "Widget", "widgets")
    await client.apply(
        Widget(metadata=ObjectMeta(name="w"), spec={"routes": [{"name": "a", "weight": 1}]}), field_manager="alice"
    )
    merged = await client.apply(
        Widget(metadata=ObjectMeta(name="w"), spec={"routes": [{"name": "b", "weight": 2}]}), field_manager="bob"
    )
    assert merged.spec["routes"] == [{"name": "a", "weight": 1}, {"name": "b", "weight": 2}]
    error = await api_error(
        client.apply(
            Widget(metadata=ObjectMeta(name="w"), spec={"routes": [{"name": "a", "weight": 9}]}), field_manager="bob"
        )
    )
    assert error.status.code == 409 and '.spec.routes[name="a"].weight' in error.status.message
    status = await client.apply(
        Widget.Status(metadata=ObjectMeta(name="w"), status={"ready": True}), "w", field_manager="ctl"
    )
    assert status.status == {"ready": True} and len(status.spec["routes"]) == 2
    assert {(m.manager, m.subresource) for m in status.metadata.managedFields} == {
        ("alice", None),
        ("bob", None),
        ("ctl", "status"),
    }


# --- create details: generateName, namespaces, dry run -------------------------------------------


async def test_generate_name(client: AsyncClient) -> None:
    made = [await client.create(ConfigMap(metadata=ObjectMeta(generateName="job-"))) for _ in range(5)]
    names = [m.metadata.name for m in made]
    assert all(re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", n) for n in names)
    assert len(set(names)) == 5
    error = await api_error(client.create(ConfigMap(metadata=ObjectMeta(generateName="Bad_"))))
    assert error.status.code == 422
    error = await api_error(client.create(ConfigMap(metadata=ObjectMeta())))
    assert error.status.code == 422 and "name or generateName is required" in error.status.message


async def test_namespaces_must_exist_and_their_deletion_deletes_their_content(client: AsyncClient) -> None:
    error = await api_error(client.create(configmap("a"), namespace="nowhere"))
    assert error.status.code == 404
    await client.create(Namespace(metadata=ObjectMeta(name="team")))
    assert (await client.get(Namespace, "team")).status.phase == "Active"
    await client.create(configmap("a"), namespace="team")
    await client.delete(Namespace, "team")
    assert (await api_error(client.get(ConfigMap, "a", namespace="team"))).status.code == 404
    assert (await api_error(client.get(Namespace, "team"))).status.code == 404


async def test_dry_run_persists_nothing(client: AsyncClient) -> None:
    out = await client.create(configmap("a", k="1"), dry_run=True)
    assert out.data == {"k": "1"}
    assert (await api_error(client.get(ConfigMap, "a"))).status.code == 404


async def test_names_and_labels_are_validated(client: AsyncClient) -> None:
    error = await api_error(client.create(configmap("Upper")))
    assert error.status.code == 422 and error.status.reason == "Invalid"
    error = await api_error(client.create(configmap("a", {"bad key": "x"})))
    assert error.status.code == 422 and "metadata.labels" in error.status.message


# --- watch ---------------------------------------------------------------------------------------


async def collect(client: AsyncClient, n: int, **kwargs: Any) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    async with asyncio.timeout(5):
        async for kind, obj in client.watch(ConfigMap, **kwargs):
            out.append((kind, obj.metadata.name, rv(obj)))
            if len(out) == n:
                break
    return out


async def test_watch_from_a_resource_version_sends_only_later_events(client: AsyncClient) -> None:
    a = await client.create(configmap("a"))
    b = await client.create(configmap("b"))
    a2 = await client.patch(ConfigMap, "a", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
    await client.delete(ConfigMap, "b")
    events = await collect(client, 3, resource_version=a.metadata.resourceVersion)
    assert [(k, n) for k, n, _ in events] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert events[0][2] == rv(b) and events[1][2] == rv(a2) and events[2][2] > rv(a2)
    # Without a resourceVersion: the current state as ADDED, then what happens next.
    watch = client.watch(ConfigMap)
    async with asyncio.timeout(5):
        assert (await anext(watch))[0] == "ADDED"
        await client.create(configmap("c"))
        kind, obj = await anext(watch)
    assert (kind, obj.metadata.name) == ("ADDED", "c")
    await watch.aclose()


async def test_watch_from_a_compacted_version_is_410_gone(
    api: ApiServer, client: AsyncClient, http: httpx.AsyncClient
) -> None:
    a = await client.create(configmap("a"))
    await client.create(configmap("b"))
    api.store.compact()
    url = "/api/v1/namespaces/default/configmaps"
    params = {"watch": "true", "resourceVersion": a.metadata.resourceVersion}
    async with http.stream("GET", url, params=params) as rsp:
        first = json.loads(await anext(rsp.aiter_lines()))
    assert first["type"] == "ERROR" and first["object"]["code"] == 410
    # lightkube's watch restarts from the current state on 410, as clients must.
    restarted = await collect(
        client, 2, resource_version=a.metadata.resourceVersion, on_error=lambda e, n: OnErrorResult(OnErrorAction.RETRY)
    )
    assert sorted(n for _, n, _ in restarted) == ["a", "b"]


async def test_watch_bookmarks_and_initial_events(api: ApiServer, client: AsyncClient, http: httpx.AsyncClient) -> None:
    await client.create(configmap("a"))
    params = {
        "watch": "true",
        "allowWatchBookmarks": "true",
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
    }
    async with http.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as rsp:
        lines = rsp.aiter_lines()
        async with asyncio.timeout(5):
            added = json.loads(await anext(lines))
            end = json.loads(await anext(lines))
            api.store.bookmark()
            later = json.loads(await anext(lines))
    assert added["type"] == "ADDED"
    assert end["type"] == "BOOKMARK" and end["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"
    }
    assert later["type"] == "BOOKMARK" and int(later["object"]["metadata"]["resourceVersion"]) >= rv(
        await client.get(ConfigMap, "a")
    )


async def test_watch_ends_at_timeout_seconds(http: httpx.AsyncClient) -> None:
    params = {"watch": "true", "timeoutSeconds": "1", "resourceVersion": "1"}
    async with asyncio.timeout(5):
        rsp = await http.get("/api/v1/namespaces/default/configmaps", params=params)
    assert rsp.status_code == 200


# --- deletion ------------------------------------------------------------------------------------


async def test_delete_then_404(client: AsyncClient) -> None:
    await client.create(configmap("a"))
    await client.delete(ConfigMap, "a")
    error = await api_error(client.get(ConfigMap, "a"))
    assert (error.status.code, error.status.reason) == (404, "NotFound")
    assert error.status.details.name == "a"
    assert (await api_error(client.delete(ConfigMap, "a"))).status.code == 404
    assert (await api_error(client.patch(ConfigMap, "a", {"data": {}}, patch_type=PatchType.MERGE))).status.code == 404


async def test_finalizers_hold_deletion(client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="a", finalizers=["example.com/hold"])))
    await client.delete(ConfigMap, "a")
    held = await client.get(ConfigMap, "a")
    assert held.metadata.deletionTimestamp is not None
    error = await api_error(
        client.patch(
            ConfigMap, "a", {"metadata": {"finalizers": ["example.com/hold", "x.io/more"]}}, patch_type=PatchType.MERGE
        )
    )
    assert error.status.code == 422
    await client.patch(ConfigMap, "a", {"metadata": {"finalizers": None}}, patch_type=PatchType.MERGE)
    assert (await api_error(client.get(ConfigMap, "a"))).status.code == 404


async def test_owner_references_are_garbage_collected(client: AsyncClient) -> None:
    owner = await client.create(rollout("r"))
    ref = {
        "apiVersion": "rollwise.dev/v1alpha1",
        "kind": "Rollout",
        "name": "r",
        "uid": owner.metadata.uid,
        "controller": True,
    }
    await client.create(ConfigMap(metadata=ObjectMeta(name="owned", ownerReferences=[ref])))
    await client.create(ConfigMap(metadata=ObjectMeta(name="orphan", ownerReferences=[ref])))
    kept = await client.create(rollout("keep"))
    await client.create(
        ConfigMap(metadata=ObjectMeta(name="kept", ownerReferences=[{**ref, "name": "keep", "uid": kept.metadata.uid}]))
    )
    await client.delete(Rollout, "r")
    names = sorted([cm.metadata.name async for cm in client.list(ConfigMap)])
    assert names == ["kept"]
    await client.delete(Rollout, "keep", cascade=CascadeType.ORPHAN)
    orphaned = await client.get(ConfigMap, "kept")
    assert not orphaned.metadata.ownerReferences


# --- patch formats -------------------------------------------------------------------------------


async def test_strategic_merge_patch_merges_lists_by_key(client: AsyncClient) -> None:
    await client.create(Deployment.from_dict(deployment("web")))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "example/proxy:1"}]}}}}
    merged = await client.patch(Deployment, "web", patch, patch_type=PatchType.STRATEGIC)
    assert [c.name for c in merged.spec.template.spec.containers] == ["app", "proxy"]
    deleted = await client.patch(
        Deployment,
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "$patch": "delete"}]}}}},
        patch_type=PatchType.STRATEGIC,
    )
    assert [c.name for c in deleted.spec.template.spec.containers] == ["proxy"]
    # A merge patch replaces lists whole.
    replaced = await client.patch(Deployment, "web", patch, patch_type=PatchType.MERGE)
    assert [c.name for c in replaced.spec.template.spec.containers] == ["proxy"]
    await client.create(rollout("r"))
    error = await api_error(client.patch(Rollout, "r", {"spec": {"replicas": 1}}, patch_type=PatchType.STRATEGIC))
    assert error.status.code == 415  # custom resources take no strategic merge patch


# --- custom resources: CRDs, versions, schema ----------------------------------------------------


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer", "default": 1, "minimum": 0},
                                        "routes": {
                                            "type": "array",
                                            "x-kubernetes-list-type": "map",
                                            "x-kubernetes-list-map-keys": ["name"],
                                            "items": {
                                                "type": "object",
                                                "required": ["name"],
                                                "properties": {
                                                    "name": {"type": "string"},
                                                    "weight": {"type": "integer"},
                                                },
                                            },
                                        },
                                    },
                                },
                                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                            },
                        }
                    },
                }
            ],
        },
    }


async def test_a_crd_created_through_the_api_is_established_and_served(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    crd = await client.create(CustomResourceDefinition.from_dict(widget_crd()))
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    Widget = create_namespaced_resource("example.com", "v1", "Widget", "widgets")
    made = await client.create(Widget(metadata=ObjectMeta(name="w"), spec={}))
    assert made.spec == {"size": 1}  # defaulted
    discovery = (await http.get("/apis/example.com/v1")).json()
    assert {r["name"] for r in discovery["resources"]} == {"widgets", "widgets/status"}
    await client.delete(CustomResourceDefinition, "widgets.example.com")
    assert (await http.get("/apis/example.com/v1/namespaces/default/widgets/w")).status_code == 404
    assert (await http.get("/apis/example.com/v1")).status_code == 404


async def test_custom_resources_are_pruned_defaulted_and_validated(
    client: AsyncClient, http: httpx.AsyncClient
) -> None:
    body = rollout("r").to_dict()
    body["spec"]["unknownField"] = 1
    rsp = await http.post("/apis/rollwise.dev/v1alpha1/namespaces/default/rollouts", json=body)
    assert rsp.status_code == 201
    assert (
        'unknown field \\"spec.unknownField\\"' in rsp.headers["Warning"]
        or "spec.unknownField" in rsp.headers["Warning"]
    )
    created = rsp.json()
    assert "unknownField" not in created["spec"]
    assert created["spec"]["revisionHistoryLimit"] == 10  # a schema default
    rsp = await http.post(
        "/apis/rollwise.dev/v1alpha1/namespaces/default/rollouts",
        params={"fieldValidation": "Strict"},
        json={**body, "metadata": {"name": "s"}},
    )
    assert rsp.status_code == 400 and "unknown field" in rsp.json()["message"]
    error = await api_error(client.patch(Rollout, "r", {"spec": {"replicas": "many"}}, patch_type=PatchType.MERGE))
    assert (error.status.code, error.status.reason) == (422, "Invalid") and "spec.replicas" in error.status.message


async def test_crd_versions_share_storage(client: AsyncClient, shared_crds: Any) -> None:
    vs = {
        "hosts": ["web"],
        "http": [{"name": "primary", "route": [{"destination": {"host": "web-stable"}, "weight": 100}]}],
    }
    await client.create(VirtualServiceV1beta1(metadata=ObjectMeta(name="web"), spec=vs))
    read = await client.get(VirtualService, "web")
    assert read.apiVersion == "networking.istio.io/v1" and read.spec == vs


async def test_gateway_api_defaults_apply(client: AsyncClient, shared_crds: Any) -> None:
    route = HTTPRoute(
        metadata=ObjectMeta(name="web"),
        spec={"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web-stable", "port": 80}]}]},
    )
    created = await client.create(route)
    backend = created.spec["rules"][0]["backendRefs"][0]
    assert backend["weight"] == 1 and backend["kind"] == "Service" and backend["group"] == ""
    assert created.spec["parentRefs"][0]["kind"] == "Gateway"


async def test_scale_subresource(client: AsyncClient) -> None:
    await client.create(rollout("r", replicas=2))
    scale = await client.get(Rollout.Scale, "r")
    assert scale.spec.replicas == 2
    await client.patch(Rollout.Scale, "r", {"spec": {"replicas": 5}}, patch_type=PatchType.MERGE)
    assert (await client.get(Rollout, "r")).spec["replicas"] == 5
    await client.create(Deployment.from_dict(deployment("web")))
    scale = await client.get(Deployment.Scale, "web")
    assert scale.status.selector == "app=web"


async def test_pagination_with_limit_and_continue(client: AsyncClient, http: httpx.AsyncClient) -> None:
    for i in range(5):
        await client.create(configmap(f"cm-{i}"))
    first = (await http.get("/api/v1/namespaces/default/configmaps", params={"limit": "2"})).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["cm-0", "cm-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    names = [cm.metadata.name async for cm in client.list(ConfigMap, chunk_size=2)]
    assert names == [f"cm-{i}" for i in range(5)]


# --- discovery -----------------------------------------------------------------------------------


async def test_discovery(http: httpx.AsyncClient, shared_crds: Any) -> None:
    core = (await http.get("/api/v1")).json()
    core_names = {r["name"] for r in core["resources"]}
    assert {"namespaces", "namespaces/status", "pods", "services", "configmaps", "secrets", "events"} <= core_names
    groups = {g["name"]: g for g in (await http.get("/apis")).json()["groups"]}
    assert {"apps", "apiextensions.k8s.io", "rollwise.dev", "networking.istio.io", "gateway.networking.k8s.io"} <= set(
        groups
    )
    assert groups["networking.istio.io"]["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in groups["networking.istio.io"]["versions"]] == ["v1", "v1beta1", "v1alpha3"]
    istio = {r["name"] for r in (await http.get("/apis/networking.istio.io/v1")).json()["resources"]}
    assert {"virtualservices", "destinationrules", "virtualservices/status"} <= istio
    gateway = {r["name"] for r in (await http.get("/apis/gateway.networking.k8s.io/v1")).json()["resources"]}
    assert {"httproutes", "httproutes/status"} <= gateway
    apps = {r["name"] for r in (await http.get("/apis/apps/v1")).json()["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= apps
    crds = {r["name"] for r in (await http.get("/apis/apiextensions.k8s.io/v1")).json()["resources"]}
    assert crds == {"customresourcedefinitions", "customresourcedefinitions/status"}
    rollwise = {r["name"]: r for r in (await http.get("/apis/rollwise.dev/v1alpha1")).json()["resources"]}
    assert rollwise["rollouts"]["kind"] == "Rollout" and rollwise["rollouts"]["namespaced"] is True
    assert {"rollouts/status", "rollouts/scale"} <= set(rollwise)
    assert (await http.get("/apis/nothing.example.com/v1")).status_code == 404
    listed = (await http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")).json()
    assert "virtualservices.networking.istio.io" in {i["metadata"]["name"] for i in listed["items"]}
    assert (await http.get("/version")).json()["major"] == "1"


# --- kmock stays usable --------------------------------------------------------------------------


async def test_kmock_reactions_still_override_the_emulator(api: ApiServer, client: AsyncClient) -> None:
    import kmock

    failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503, "reason": "ServiceUnavailable"}
    (
        api["patch", kmock.resource("v1/configmaps")]
        << 503
        << kmock.headers({"Content-Type": "application/json"})
        << failure
    )
    await client.create(configmap("a", k="1"))
    error = await api_error(client.patch(ConfigMap, "a", {"data": {"k": "2"}}, patch_type=PatchType.MERGE))
    assert error.status.code == 503
    assert (await client.get(ConfigMap, "a")).data == {"k": "1"}  # the store was not touched
    assert api.objects["v1/configmaps", "default", "a"] >= {"data": {"k": "1"}}
    verbs = [(a.verb, a.resource) for a in api.audit]
    assert ("create", "configmaps") in verbs and ("get", "configmaps") in verbs


async def test_wait_until_follows_commits(api: ApiServer, client: AsyncClient) -> None:
    waiter = asyncio.create_task(wait_until(api, lambda: api.get_object("v1", "ConfigMap", "default", "late")))
    await asyncio.sleep(0)
    await client.create(configmap("late", k="1"))
    assert (await waiter)["data"] == {"k": "1"}


# --- smaller contracts ---------------------------------------------------------------------------


async def test_apply_needs_a_field_manager(http: httpx.AsyncClient) -> None:
    rsp = await http.patch(
        "/api/v1/namespaces/default/configmaps/a",
        content=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n",
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert rsp.status_code == 400 and "fieldManager" in rsp.json()["message"]
    rsp = await http.patch(
        "/api/v1/namespaces/default/configmaps/a",
        params={"fieldManager": "yaml-user"},
        content=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n",
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert rsp.status_code == 201 and rsp.json()["data"] == {"k": "v"}
    rsp = await http.patch("/api/v1/namespaces/default/configmaps/a", json={"data": {}})  # plain JSON is no patch type
    assert rsp.status_code == 415


async def test_delete_preconditions(client: AsyncClient, http: httpx.AsyncClient) -> None:
    created = await client.create(configmap("a"))
    await client.patch(ConfigMap, "a", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
    stale = {"preconditions": {"resourceVersion": created.metadata.resourceVersion}}
    rsp = await http.request("DELETE", "/api/v1/namespaces/default/configmaps/a", json=stale)
    assert rsp.status_code == 409
    rsp = await http.request(
        "DELETE", "/api/v1/namespaces/default/configmaps/a", json={"preconditions": {"uid": created.metadata.uid}}
    )
    assert rsp.status_code == 200


async def test_delete_collection(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await client.create(configmap("a", {"app": "x"}))
    await client.create(configmap("b", {"app": "x"}))
    await client.create(configmap("c", {"app": "y"}))
    rsp = await http.delete("/api/v1/namespaces/default/configmaps", params={"labelSelector": "app=x"})
    assert rsp.status_code == 200
    assert [cm.metadata.name async for cm in client.list(ConfigMap)] == ["c"]
    await client.deletecollection(ConfigMap)
    assert [cm.metadata.name async for cm in client.list(ConfigMap)] == []


async def test_watch_a_single_object(client: AsyncClient, http: httpx.AsyncClient) -> None:
    await client.create(configmap("a"))
    b = await client.create(configmap("b"))
    params = {"watch": "true", "resourceVersion": b.metadata.resourceVersion}
    async with http.stream("GET", "/api/v1/namespaces/default/configmaps/a", params=params) as rsp:
        lines = rsp.aiter_lines()
        await client.patch(ConfigMap, "b", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
        await client.patch(ConfigMap, "a", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
        async with asyncio.timeout(5):
            event = json.loads(await anext(lines))
    assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", "a")


async def test_managed_fields_round_trip_the_fieldsv1_format() -> None:
    from rollwise.testing.kubeapi.fields import decode, encode

    fields_v1 = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:containers": {'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}}},
        "f:finalizers": {'v:"a.io/x"': {}},
    }
    assert encode(decode(fields_v1)) == fields_v1
