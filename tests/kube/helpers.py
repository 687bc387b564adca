"""Helpers for tests against the emulated Kubernetes API server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lightkube import KubeConfig
from lightkube.config.kubeconfig import Cluster, User
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta

from rollwise.testing.kubeapi import ApiServer
from rollwise.testing.kubeapi.store import Event

Rollout = create_namespaced_resource("rollwise.dev", "v1alpha1", "Rollout", "rollouts")
VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")
VirtualServiceV1beta1 = create_namespaced_resource(
    "networking.istio.io", "v1beta1", "VirtualService", "virtualservices"
)
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")


def rollout(name: str, replicas: int = 2, **meta: Any) -> Any:
    return Rollout(
        metadata=ObjectMeta(name=name, **meta),
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example/app:1.0"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    )


def kubeconfig(server: ApiServer) -> KubeConfig:
    return KubeConfig.from_one(cluster=Cluster(server=str(server.url).rstrip("/")), user=User(), namespace="default")


async def wait_until(api: ApiServer, predicate: Callable[[], Any], timeout: float = 10) -> Any:
    """Wait until `predicate()` is truthy, re-checking after every write the server commits (no
    polling); returns the predicate's value."""
    changed = asyncio.Event()

    def on_commit(_: Event) -> None:
        changed.set()

    api.store.on_commit.append(on_commit)
    try:
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                changed.clear()
                await changed.wait()
            return value
    finally:
        api.store.on_commit.remove(on_commit)
