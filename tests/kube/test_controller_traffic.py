"""Traffic figures through the controller: a real Prometheus (Debian's package) on 127.0.0.1
scrapes a small exporter of Istio's standard metrics whose counters the test advances as the
revisions serve requests, split by the Rollout's weights. A dynamic canary with healthy numbers
rises and is promoted, with 10% errors it is aborted; a builtin metric passes an analysis step and
fails the next update; an A/B test promotes the candidate that wins on error rate; without a
Prometheus a dynamic canary holds (never promoted) and a builtin analysis step pauses; a shadow's
reply comparison is refused."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace

from rollwise.lint import lint_paths
from rollwise.platforms.kubernetes.names import AnalysisTemplate, replicaset_name
from rollwise.testing.kubeapi import ApiServer
from tests.analysis.prometheus_process import run_prometheus
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    ReadinessDriver,
    events,
    replicasets,
    settle,
    status,
    weights,
)
from tests.kube.istio_exporter import IstioExporter, load, running_exporter
from tests.kube.test_controller import create, healthy, revision_of, service, set_image, spec
from tests.kube.test_controller_routers import virtual_service
from tests.procs import free_port

pytestmark = pytest.mark.asyncio

ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}
LONG = 120.0  # the judgements need a few intervals of scraped traffic; the machine is shared


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[tuple[IstioExporter, str]]:
    """The exporter and a Prometheus scraping it every second."""
    port = free_port()
    with running_exporter(port, NS) as exporter, run_prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"]) as prom:
        yield exporter, prom


async def start(api: ApiServer, client: AsyncClient, prometheus_url: str | None) -> ControllerThread:
    await client.get(Namespace, NS)
    await service(client, "web-stable")
    await service(client, "web-canary")
    await virtual_service(client)
    controller = ControllerThread(api, prometheus_url=prometheus_url).start()
    await controller.wait_started()
    return controller


@pytest_asyncio.fixture
async def driver(api: ApiServer, client: AsyncClient) -> AsyncIterator[ReadinessDriver]:
    async with ReadinessDriver(api, client) as d:
        yield d


def dynamic(min_samples: int = 60) -> dict[str, Any]:
    """An Istio-routed dynamic canary judged every 3 s."""
    return {
        "canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": ISTIO,
            "dynamic": {
                "startWeight": 20,
                "minStepWeight": 10,
                "maxStepWeight": 40,
                "interval": "3s",
                "minSamples": min_samples,
            },
        }
    }


async def until(api: ApiServer, predicate: Callable[[], Any], timeout: float = 20) -> None:
    """settle(), telling the rollout's status and events when the condition never came."""
    try:
        await settle(api, predicate, timeout=timeout)
    except TimeoutError:
        raise AssertionError(
            f"not within {timeout}s; status {status(api, 'web')}; events {events(api, 'web')}"
        ) from None


def workload(revision: str) -> str:
    return replicaset_name("web", revision)


def with_image(doc: dict[str, Any], image: str) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    new["template"]["spec"]["containers"][0]["image"] = image
    return new


async def scraped(prom: str, revision: str, at_least: int) -> None:
    """Wait until Prometheus holds at least `at_least` requests of the revision."""
    query = f'sum(istio_requests_total{{destination_workload="{workload(revision)}"}})'
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http, asyncio.timeout(60):
        while True:
            body = (await http.get(f"{prom}/api/v1/query", params={"query": query})).json()
            result = body["data"]["result"]
            if result and float(result[0]["value"][1]) >= at_least:
                return
            await asyncio.sleep(0.2)  # polling Prometheus, which has no change notification


async def test_a_dynamic_canary_rises_to_promotion_when_healthy_and_aborts_on_errors(
    api: ApiServer,
    client: AsyncClient,
    metrics: tuple[IstioExporter, str],
    driver: ReadinessDriver,
    shared_crds: Path,
) -> None:
    exporter, prom = metrics
    controller = await start(api, client, prom)
    try:
        doc = spec(dynamic())
        doc2, doc3 = with_image(doc, "example/app:2.0"), with_image(doc, "example/app:3.0")
        v1, v2, v3 = revision_of(doc), revision_of(doc2), revision_of(doc3)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))
        seen: list[int] = []

        def current() -> dict[str, int]:
            w = weights(api, "web") or {status(api, "web").get("stableRevision", v1): 100}
            seen.append(w.get(v2, 0))
            return w

        async with load(exporter, current, workload, {v3: 0.10}, per_second=400):
            await scraped(prom, v1, 300)  # stable's history before the canary
            await set_image(client, "web", doc, "example/app:2.0")
            await until(api, lambda: healthy(api, "web", v2), timeout=LONG)
            passed = [e[2] for e in events(api, "web") if e[1] == "AnalysisSuccessful"]
            assert len(passed) >= 2 and all("-dyn" in p for p in passed), passed
            assert not any(e[1] in ("AnalysisFailed", "AnalysisError") for e in events(api, "web"))
            # The weight rose through intermediate steps, then the canary was promoted.
            assert len({w for w in seen if 0 < w < 100}) >= 2, sorted(set(seen))

            await set_image(client, "web", doc2, "example/app:3.0")
            await until(api, lambda: status(api, "web").get("phase") == "Aborted", timeout=LONG)
            await until(api, lambda: weights(api, "web").get(v2) == 100)
        s = status(api, "web")
        assert s["abort"]["revision"] == v3
        failed = [e for e in events(api, "web") if e[1] == "AnalysisFailed"]
        assert (failed and "harm" in failed[-1][2].lower()) or "error" in failed[-1][2].lower(), failed
        assert replicasets(api, "web")[v2] == 4
    finally:
        await controller.stop()


def builtin_template(interval: str = "2s", consecutive_errors: int = 4) -> Any:
    return AnalysisTemplate.from_dict(
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "errors", "namespace": NS},
            "spec": {
                "metrics": [
                    {
                        "name": "error-rate",
                        "provider": {"builtin": {"metric": "error-rate", "revision": "canary", "window": "10s"}},
                        # A new series needs two scrapes (1 s apart) before increase() sees it.
                        "initialDelay": "6s",
                        "interval": interval,
                        "count": 2,
                        "consecutiveErrorLimit": consecutive_errors,
                        "successCondition": "result < 0.05",
                    }
                ]
            },
        }
    )


def stepped() -> dict[str, Any]:
    steps = [{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "errors"}]}}]
    return {
        "canary": {
            "stableService": "web-stable",
            "canaryService": "web-canary",
            "trafficRouting": ISTIO,
            "steps": steps,
        }
    }


async def test_a_builtin_metric_passes_a_healthy_canary_and_fails_one_with_errors(
    api: ApiServer,
    client: AsyncClient,
    metrics: tuple[IstioExporter, str],
    driver: ReadinessDriver,
    shared_crds: Path,
) -> None:
    exporter, prom = metrics
    controller = await start(api, client, prom)
    try:
        await client.create(builtin_template())
        doc = spec(stepped())
        doc2, doc3 = with_image(doc, "example/app:2.0"), with_image(doc, "example/app:3.0")
        v1, v2, v3 = revision_of(doc), revision_of(doc2), revision_of(doc3)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))

        def current() -> dict[str, int]:
            return weights(api, "web") or {status(api, "web").get("stableRevision", v1): 100}

        async with load(exporter, current, workload, {v3: 0.10}):
            await scraped(prom, v1, 300)
            await set_image(client, "web", doc, "example/app:2.0")
            await until(api, lambda: healthy(api, "web", v2), timeout=LONG)
            passed = [e[2] for e in events(api, "web") if e[1] == "AnalysisSuccessful"]
            assert len(passed) == 1 and "1 metric successful" in passed[0], passed

            await set_image(client, "web", doc2, "example/app:3.0")
            await until(api, lambda: status(api, "web").get("phase") == "Aborted", timeout=LONG)
        failed = [e[2] for e in events(api, "web") if e[1] == "AnalysisFailed"]
        assert failed and "error-rate" in failed[-1], failed
        assert status(api, "web")["abort"]["revision"] == v3
    finally:
        await controller.stop()


async def test_without_prometheus_a_dynamic_canary_holds_at_its_start_weight(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver, shared_crds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No figures, no exposure: every interval of the dynamic canary errs saying what to configure,
    and the engine holds the canary at its start weight, never promoting."""
    monkeypatch.delenv("ROLLWISE_PROMETHEUS_URL", raising=False)
    controller = await start(api, client, None)
    try:
        doc = spec(dynamic())
        v1 = revision_of(doc)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))
        doc2 = await set_image(client, "web", doc, "example/app:2.0")
        v2 = revision_of(doc2)

        def erred() -> int:
            return sum(r["verdict"] == "Error" for r in status(api, "web").get("analysisRuns") or [])

        await until(api, lambda: erred() >= 3, timeout=60)
        s = status(api, "web")
        assert s["stableRevision"] == v1 and s["phase"] == "Progressing"
        assert weights(api, "web") == {v1: 80, v2: 20}
        assert "holding" in s["dynamic"]["lastDecision"]
        errors = [e[2] for e in events(api, "web") if e[1] == "AnalysisError"]
        assert errors and "--prometheus-url" in errors[0], errors

    finally:
        await controller.stop()


async def test_without_prometheus_a_builtin_analysis_step_pauses(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver, shared_crds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLWISE_PROMETHEUS_URL", raising=False)
    controller = await start(api, client, None)
    try:
        await client.create(builtin_template(interval="1s", consecutive_errors=0))
        doc = spec(stepped())
        v1 = revision_of(doc)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))
        await set_image(client, "web", doc, "example/app:2.0")
        await until(api, lambda: status(api, "web").get("phase") == "Paused", timeout=60)
        s = status(api, "web")
        assert "AnalysisError" in {p["reason"] for p in s["pauseConditions"]}
        assert s["analysisRuns"][-1]["kind"] == "step" and s["analysisRuns"][-1]["verdict"] == "Error"
        errors = [e[2] for e in events(api, "web") if e[1] == "AnalysisError"]
        assert "builtin metrics on Kubernetes read the router's metrics from Prometheus" in errors[-1], errors
        assert s["stableRevision"] == v1
    finally:
        await controller.stop()


async def test_a_shadow_reply_comparison_is_refused_on_kubernetes(
    api: ApiServer, client: AsyncClient, driver: ReadinessDriver, shared_crds: Path
) -> None:
    controller = await start(api, client, "http://127.0.0.1:9")
    try:
        shadow = {
            "shadow": {
                "stableService": "web-stable",
                "canaryService": "web-canary",
                "trafficRouting": ISTIO,
                "duration": "1h",
                "compare": {"maxMismatchRate": 0.01},
            }
        }
        doc = spec(shadow)
        v1 = revision_of(doc)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))
        await set_image(client, "web", doc, "example/app:2.0")
        await until(api, lambda: status(api, "web").get("phase") == "Paused")
        runs = status(api, "web")["analysisRuns"]
        assert [(r["kind"], r["verdict"]) for r in runs if r["kind"] == "shadowCompare"] == [("shadowCompare", "Error")]
        errors = [e[2] for e in events(api, "web") if e[1] == "AnalysisError"]
        assert errors and "mesh drops the shadow's replies" in errors[0], errors
        assert status(api, "web")["stableRevision"] == v1
    finally:
        await controller.stop()


SHADOW_YAML = """apiVersion: rollwise.dev/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: example/app:1.0
  strategy:
    shadow:
      stableService: web-stable
      canaryService: web-canary
      duration: 10m
      compare: {maxMismatchRate: 0.01}
      trafficRouting:
%s
"""


@pytest.mark.parametrize(
    "routing",
    [
        "        istio:\n          virtualService: {name: web}",
        "        gatewayAPI:\n          httpRoute: web",
        "        nginx:\n          ingress: web",
    ],
)
async def test_lint_refuses_a_reply_comparison_with_the_kubernetes_routers(tmp_path: Path, routing: str) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(SHADOW_YAML % routing)
    problems = [str(p) for p in lint_paths([path]).problems]
    assert any(("spec.strategy.shadow.compare" in p and "mirrorCompare" not in p) or "compare" in p for p in problems)
    assert any("cannot compare mirrored responses" in p for p in problems), problems


async def test_an_ab_test_promotes_the_candidate_that_wins_on_error_rate(
    api: ApiServer,
    client: AsyncClient,
    metrics: tuple[IstioExporter, str],
    driver: ReadinessDriver,
    shared_crds: Path,
) -> None:
    exporter, prom = metrics
    controller = await start(api, client, prom)
    try:
        strategy = {
            "abTest": {
                "variants": [
                    {"name": "a", "role": "control", "match": [{"headers": [{"name": "x-variant", "exact": "a"}]}]},
                    {"name": "b", "role": "candidate", "match": [{"headers": [{"name": "x-variant", "exact": "b"}]}]},
                ],
                "duration": "8s",
                "winnerBy": {"metric": "error-rate", "better": "lower", "minSamples": 200},
                "stableService": "web-stable",
                "canaryService": "web-canary",
                "trafficRouting": ISTIO,
            }
        }
        doc = spec(strategy)
        doc2 = with_image(doc, "example/app:2.0")
        v1, v2 = revision_of(doc), revision_of(doc2)
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))

        def current() -> dict[str, int]:
            # Users pick their variant by header: half and half while the experiment runs.
            if status(api, "web").get("stage") == "experiment":
                return {v1: 50, v2: 50}
            return weights(api, "web") or {status(api, "web").get("stableRevision", v1): 100}

        async with load(exporter, current, workload, {v1: 0.05}, per_second=400):
            await scraped(prom, v1, 300)
            await set_image(client, "web", doc, "example/app:2.0")
            await until(api, lambda: healthy(api, "web", v2), timeout=LONG)
        passed = [e[2] for e in events(api, "web") if e[1] == "AnalysisSuccessful"]
        assert len(passed) == 1 and "candidate wins on error-rate" in passed[0], passed
    finally:
        await controller.stop()
