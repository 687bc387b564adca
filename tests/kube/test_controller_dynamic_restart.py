"""A dynamic canary's evidence survives a restart of the controller: it is kept in the Rollout's
status (`status.dynamicEvidence`), and the new controller's next interval continues from it.

The canary fails a fifth of its requests. `minSamples` is 200, so no decision is taken before the
canary has served 200 requests in all: the first controller sees fewer than 200 (it holds,
collecting), and so does the second after the restart. Only the two together reach 200, and the
rollout aborts after the restart at that point, as it would without the restart. Requests are
"served" by advancing the counters of an exporter of Istio's metrics, which a real Prometheus
scrapes (as in test_controller_traffic.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient, KubeConfig
from lightkube.config.kubeconfig import Cluster, User
from lightkube.resources.core_v1 import Namespace

from rollwise.analysis.sequential import Evidence, WindowCounts, decide
from rollwise.platforms.kubernetes.analysis import AnalysisRunner
from rollwise.spec.status import RolloutStatus
from rollwise.spec.strategies.canary import DynamicWeighting
from rollwise.testing.kubeapi import ApiServer
from tests.analysis.prometheus_process import run_prometheus
from tests.kube.controller_harness import NS, ControllerThread, ReadinessDriver, events, status, weights
from tests.kube.istio_exporter import IstioExporter, running_exporter
from tests.kube.test_controller import create, healthy, revision_of, service, set_image, spec
from tests.kube.test_controller_routers import virtual_service
from tests.kube.test_controller_traffic import LONG, dynamic, scraped, until, workload
from tests.procs import free_port

pytestmark = pytest.mark.asyncio

MIN_SAMPLES = 200
STABLE_HISTORY = 3000
# Each batch: 10 canary requests of which 2 fail, 40 stable requests, none failing.
CANARY_BATCH, CANARY_ERRORS, STABLE_BATCH = 10, 2, 40
# At most this many canary requests per controller: fewer than minSamples, so neither alone decides.
PER_CONTROLLER = MIN_SAMPLES - CANARY_BATCH


@pytest.fixture
def metrics(tmp_path: Path) -> Iterator[tuple[IstioExporter, str]]:
    port = free_port()
    with running_exporter(port, NS) as exporter, run_prometheus(tmp_path / "prom", [f"127.0.0.1:{port}"]) as prom:
        yield exporter, prom


@pytest_asyncio.fixture
async def driver(api: ApiServer, client: AsyncClient) -> AsyncIterator[ReadinessDriver]:
    await client.get(Namespace, NS)  # connect before any controller starts
    async with ReadinessDriver(api, client) as d:
        yield d


def evidence(api: ApiServer) -> dict[str, Any]:
    return status(api, "web").get("dynamicEvidence") or {}


async def serve(exporter: IstioExporter, canary: str, stable: str, limit: int, until_true: Any) -> int:
    """Serve batches, a few per second, until `until_true()` or `limit` canary requests; returns
    how many canary requests were served."""
    served = 0
    while served + CANARY_BATCH <= limit and not until_true():
        exporter.serve(CANARY_BATCH, CANARY_ERRORS, workload(canary))
        exporter.serve(STABLE_BATCH, 0, workload(stable))
        served += CANARY_BATCH
        await asyncio.sleep(0.25)  # the pace of the traffic, not a wait for the controller
    return served


def premise_holds() -> None:
    """What the rollout's numbers mean: either controller's share alone is below minSamples (a
    hold, collecting), both together are evidence of harm (an abort)."""
    config = DynamicWeighting.model_validate(dynamic(MIN_SAMPLES)["canary"]["dynamic"])
    history = Evidence.with_stable_history(STABLE_HISTORY, 0)
    share = PER_CONTROLLER * CANARY_ERRORS // CANARY_BATCH
    alone = decide(config, 20, history, WindowCounts(PER_CONTROLLER, share, 4 * PER_CONTROLLER, 0))
    assert alone.action == "hold" and "collecting" in alone.reason, alone
    both = decide(config, 20, history, WindowCounts(MIN_SAMPLES, MIN_SAMPLES // 5, 4 * MIN_SAMPLES, 0))
    assert both.action == "abort", both


async def test_a_restarted_controller_continues_a_dynamic_canary_with_the_evidence_from_before(
    api: ApiServer,
    client: AsyncClient,
    metrics: tuple[IstioExporter, str],
    driver: ReadinessDriver,
    shared_crds: Path,
) -> None:
    premise_holds()
    exporter, prom = metrics
    await service(client, "web-stable")
    await service(client, "web-canary")
    await virtual_service(client)
    doc = spec(dynamic(MIN_SAMPLES))
    v1 = revision_of(doc)

    first = ControllerThread(api, prometheus_url=prom).start()
    await first.wait_started()
    try:
        await create(client, "web", doc)
        await until(api, lambda: healthy(api, "web", v1))
        exporter.serve(STABLE_HISTORY, 0, workload(v1))  # stable's history before the canary
        await scraped(prom, v1, STABLE_HISTORY)
        v2 = revision_of(await set_image(client, "web", doc, "example/app:2.0"))
        await until(api, lambda: weights(api, "web") == {v1: 80, v2: 20}, timeout=LONG)

        # The first controller sees at least half of minSamples (in finished intervals), no more.
        def half_seen() -> bool:
            return evidence(api).get("counts", {}).get("canaryRequests", 0) >= MIN_SAMPLES // 2

        served_before = await serve(exporter, v2, v1, PER_CONTROLLER, half_seen)
        await until(api, half_seen, timeout=LONG)
    finally:
        await first.stop()
    before = evidence(api)
    counted = before["counts"]["canaryRequests"]
    assert MIN_SAMPLES // 2 <= counted < MIN_SAMPLES, before
    assert before["counts"]["canaryErrors"] > 0 and before["run"].startswith(f"web-{v2}-"), before
    s = status(api, "web")
    assert s["phase"] == "Progressing" and not s.get("abort"), s
    assert "holding" in s["dynamic"]["lastDecision"], s["dynamic"]
    assert weights(api, "web") == {v1: 80, v2: 20}

    second = ControllerThread(api, prometheus_url=prom).start()
    await second.wait_started()
    try:
        served_after = await serve(
            exporter, v2, v1, PER_CONTROLLER, lambda: status(api, "web").get("phase") == "Aborted"
        )
        await until(api, lambda: status(api, "web").get("phase") == "Aborted", timeout=LONG)
        await until(api, lambda: weights(api, "web") == {v1: 100}, timeout=LONG)
    finally:
        await second.stop()
    s = status(api, "web")
    assert s["abort"]["revision"] == v2 and s["stableRevision"] == v1, s["abort"]
    failed = [e[2] for e in events(api, "web") if e[1] == "AnalysisFailed"]
    assert failed, events(api, "web")
    # The verdict weighed the canary's requests from both controllers: at least minSamples in
    # all (the first controller's among them), none made up.
    found = re.search(r"errors: canary [\d.]+% of (\d+)", failed[-1])
    assert found is not None, failed[-1]
    assert MIN_SAMPLES <= int(found.group(1)) <= served_before + served_after, (failed[-1], served_before, served_after)
    assert "error rate is above stable's" in failed[-1], failed[-1]


def with_evidence(revision: str, attempt: int, interval: int, record: int | None) -> RolloutStatus:
    doc: dict[str, Any] = {
        "currentRevision": revision,
        "attempt": attempt,
        "dynamic": {"weight": 20, "stepWeight": 10, "interval": interval},
    }
    if record is not None:
        found = Evidence(canary_requests=150, canary_errors=30, history_requests=STABLE_HISTORY)
        counts = {k: v for k, v in found.to_dict().items() if v is not None}
        doc["dynamicEvidence"] = {"run": f"web-{revision}-{attempt}", "interval": record, "counts": counts}
    return RolloutStatus.model_validate(doc)


async def test_the_evidence_is_kept_for_its_revision_and_attempt_only() -> None:
    """A new controller writes the evidence it read back while the canary goes on, and drops it
    from the status once a new revision or a retry (a new attempt) starts over."""
    client = AsyncClient(KubeConfig.from_one(cluster=Cluster(server="http://127.0.0.1:9"), user=User()))
    try:

        async def notify(*_: object) -> None:
            return None

        runner = AnalysisRunner(client, notify, prometheus_url="http://127.0.0.1:9")
        key = (NS, "web")
        old = with_evidence("aaa", 1, 2, record=1)
        kept = runner.keep_evidence(key, old, with_evidence("aaa", 1, 2, record=None))
        assert kept.dynamic_evidence == old.dynamic_evidence
        assert runner.keep_evidence(key, old, with_evidence("aaa", 2, 0, record=None)).dynamic_evidence is None
        assert runner.keep_evidence(key, old, with_evidence("bbb", 1, 0, record=None)).dynamic_evidence is None
    finally:
        await client.close()
