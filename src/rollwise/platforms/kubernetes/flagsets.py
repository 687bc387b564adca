"""FlagSets in a cluster: each is written into its ConfigMap `<name>-flags` (owned by the FlagSet,
`rollwise.flags.kube.apply_flagset`), and a Rollout whose `spec.featureFlags` names one gets that
ConfigMap mounted in its pods (`rollwise.flags.configmap.mount`) plus the FlagSet's `env` values.

The mounted document changes in place (the kubelet refreshes the mount, the flagd provider re-reads
the file), so the ConfigMap's content is not part of any revision. Environment variables are read
once, at process start: the `env` values, with where the document is mounted, are a config hash of
the revision (`FlagSet/<name>`), so changing them makes a new revision, as on the local platform."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from rollwise.flags.configmap import mount
from rollwise.flags.env import env_of
from rollwise.flags.kube import apply_flagset, desired
from rollwise.platforms.kubernetes.names import FIELD_MANAGER
from rollwise.platforms.kubernetes.names import FlagSet as FlagSetResource
from rollwise.spec.flags import FlagSet
from rollwise.spec.rollout import FeatureFlagsRef

log = logging.getLogger("rollwise.kubernetes.flagsets")

Key = tuple[str, str]  # (namespace, FlagSet name)
FLAGSET_LABEL = "rollwise.dev/flagset"  # on each FlagSet's ConfigMap (rollwise.flags.configmap)
Warn = Callable[[str, str, str, str], Awaitable[None]]  # (namespace, flagset, reason, message)


def reference(name: str) -> str:
    """How a Rollout's reconcile records that it read this FlagSet (a FlagSet event wakes it)."""
    return f"FlagSet/{name}"


async def read_env(client: AsyncClient, namespace: str, name: str) -> dict[str, str]:
    """The FlagSet's `env` values ({} while it does not exist: the pods still get the file's path,
    and its creation makes a new revision with the values)."""
    try:
        obj = (await client.get(FlagSetResource, name, namespace=namespace)).to_dict()  # type: ignore[no-untyped-call]
    except ApiError as exc:
        if exc.status.code == 404:
            return {}
        raise
    return env_of(FlagSet.model_validate(_model_doc(obj)))


def config_hash(ref: FeatureFlagsRef, env: Mapping[str, str]) -> str:
    # Where the pods find the document is part of the pod template too, so it counts with the env.
    where = {"fileEnv": ref.file_env, "mountPath": ref.mount_path, "env": dict(env)}
    text = json.dumps(where, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wire(template: Mapping[str, Any], ref: FeatureFlagsRef, env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the pod template that mounts the FlagSet's ConfigMap and carries its env values.
    A container's own variable of the same name wins: a user who sets it means it."""
    out = copy.deepcopy(dict(template))
    spec = mount(dict(out.get("spec") or {}), ref)
    containers = []
    for container in spec.get("containers") or []:
        own = {e.get("name") for e in container.get("env") or []}
        extra = [{"name": k, "value": v} for k, v in sorted(env.items()) if k not in own]
        containers.append({**container, "env": [*(container.get("env") or []), *extra]})
    spec["containers"] = containers
    out["spec"] = spec
    return out


class FlagSetWriter:
    """Writes FlagSets into their ConfigMaps as their events arrive. A write the API server refuses
    is tried again every `retry_seconds` (reading the FlagSet afresh) until it succeeds or the
    FlagSet goes; a FlagSet that is not valid is reported once as a Warning event on it."""

    def __init__(self, client: AsyncClient, warn: Warn, retry_seconds: float = 2.0) -> None:
        self.client = client
        self.warn = warn
        self.retry_seconds = retry_seconds
        self._retries: dict[Key, asyncio.Task[None]] = {}
        self._reported: dict[Key, str] = {}

    async def write(self, body: Mapping[str, Any]) -> bool:
        """Write the ConfigMap of the FlagSet `body` (as the API server returns it); True if done."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        retry = self._retries.pop(key, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
        try:
            await apply_flagset(self.client, body, FIELD_MANAGER)
        except ValidationError as exc:
            await self._report(key, "InvalidFlagSet", " ".join(str(exc).splitlines()[:3]))
            return False
        except (ApiError, httpx.HTTPError) as exc:
            reason = exc.status.message if isinstance(exc, ApiError) else None
            await self._report(key, "FlagSetNotWritten", f"ConfigMap {key[1]}-flags: {reason or exc}")
            self._retry_later(key)
            return False
        self._reported.pop(key, None)
        return True

    async def restore(self, namespace: str, name: str, data: Mapping[str, Any] | None) -> None:
        """The ConfigMap of FlagSet `name` changed or went (`data` None) other than by this writer:
        write it again if it no longer holds the FlagSet's document (the FlagSet is the source of
        truth; a ConfigMap gone with its FlagSet stays gone)."""
        try:
            obj = (await self.client.get(FlagSetResource, name, namespace=namespace)).to_dict()  # type: ignore[no-untyped-call]
        except ApiError as exc:
            if exc.status.code == 404:
                return
            raise
        try:
            want = desired(obj)["data"]
        except ValidationError:
            return  # reported when the FlagSet itself was written
        if data is None or dict(data) != want:
            await self.write(obj)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._reported.pop(key, None)
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()

    async def shutdown(self) -> None:
        tasks = list(self._retries.values())
        self._retries.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _report(self, key: Key, reason: str, message: str) -> None:
        log.warning("FlagSet %s/%s: %s: %s", *key, reason, message)
        if self._reported.get(key) != f"{reason}: {message}":
            self._reported[key] = f"{reason}: {message}"
            await self.warn(key[0], key[1], reason, message)

    def _retry_later(self, key: Key) -> None:
        async def again() -> None:
            await asyncio.sleep(self.retry_seconds)
            try:
                obj = (await self.client.get(FlagSetResource, key[1], namespace=key[0])).to_dict()  # type: ignore[no-untyped-call]
            except (ApiError, httpx.HTTPError) as exc:
                if isinstance(exc, ApiError) and exc.status.code == 404:
                    self._retries.pop(key, None)
                    return  # gone: its ConfigMap goes with it (owner reference)
                self._retry_later(key)
                return
            await self.write(obj)

        self._retries[key] = asyncio.create_task(again(), name=f"rollwise-flagset-{key[0]}-{key[1]}")


def _model_doc(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": "FlagSet",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": obj.get("spec") or {},
    }
