"""secretKeyRef on Kubernetes: the Secrets an analysis references, read through lightkube from the
emulated API server, then used as basic-auth credentials against a real Prometheus."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret

from rollwise.analysis.providers.prometheus import PrometheusMeasurer
from rollwise.analysis.secrets import SecretError
from rollwise.analysis.secrets_kubernetes import read_secrets
from rollwise.spec.analysis import SecretKeyRef
from tests.analysis.helpers import context, metric
from tests.analysis.prometheus_process import run_prometheus


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def refs(*pairs: tuple[str, str]) -> list[SecretKeyRef]:
    return [SecretKeyRef(name=n, key=k) for n, k in pairs]


@pytest.mark.asyncio
async def test_secret_keys_are_read_and_missing_ones_named(client: AsyncClient) -> None:
    await client.create(
        Secret(metadata=ObjectMeta(name="prometheus"), data={"username": b64("reader"), "password": b64("pw")}),
        namespace="default",
    )
    values = await read_secrets(
        client,
        "default",
        refs(("prometheus", "username"), ("prometheus", "password"), ("prometheus", "token"), ("absent", "x")),
    )
    assert values.read(SecretKeyRef(name="prometheus", key="username")) == "reader"
    assert values.read(SecretKeyRef(name="prometheus", key="password")) == "pw"
    with pytest.raises(SecretError) as no_key:
        values.read(SecretKeyRef(name="prometheus", key="token"))
    assert str(no_key.value) == (
        "Secret 'prometheus' in namespace 'default' has no key 'token' (keys: password, username)"
    )
    with pytest.raises(SecretError) as absent:
        values.read(SecretKeyRef(name="absent", key="x"))
    assert str(absent.value) == "Secret 'absent' in namespace 'default': not found"


@pytest.mark.asyncio
async def test_secrets_are_read_from_the_runs_namespace_only(client: AsyncClient) -> None:
    await client.create(Secret(metadata=ObjectMeta(name="prometheus"), data={"token": b64("t")}), namespace="default")
    await client.create(Namespace(metadata=ObjectMeta(name="shop")))
    values = await read_secrets(client, "shop", refs(("prometheus", "token")))
    with pytest.raises(SecretError, match="Secret 'prometheus' in namespace 'shop': not found"):
        values.read(SecretKeyRef(name="prometheus", key="token"))


@pytest.mark.asyncio
async def test_basic_auth_from_a_kubernetes_secret_against_prometheus(client: AsyncClient, tmp_path: Path) -> None:
    await client.create(
        Secret(metadata=ObjectMeta(name="prometheus"), data={"username": b64("reader"), "password": b64("pw")}),
        namespace="default",
    )
    await client.create(
        Secret(metadata=ObjectMeta(name="stale"), data={"username": b64("reader"), "password": b64("old")}),
        namespace="default",
    )
    with run_prometheus(tmp_path / "prometheus", [], users={"reader": "pw"}) as address:
        results = {}
        for name in ("prometheus", "stale"):
            m = metric(
                name="q",
                provider={
                    "prometheus": {
                        "address": address,
                        "query": "vector(1)",
                        "auth": {
                            "basic": {
                                "username": {"secretKeyRef": {"name": name, "key": "username"}},
                                "password": {"secretKeyRef": {"name": name, "key": "password"}},
                            }
                        },
                    }
                },
                successCondition="result == 1",
            )
            secrets = await read_secrets(client, "default", refs((name, "username"), (name, "password")))
            results[name] = await PrometheusMeasurer().measure(m, {}, context(secrets=secrets))
    assert results["prometheus"].phase == "Successful", results["prometheus"].message
    assert results["stale"].phase == "Error"
    assert results["stale"].message == f"Prometheus at {address} refused the credentials (HTTP 401)"
