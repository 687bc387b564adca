"""A Job metric through the controller whose Job fails: the analysis step fails and the rollout is
aborted back to the stable revision (test_controller_jobs.py has the Job that completes and the
one that runs past its timeout). The emulator runs no pods: a driver plays the Job controller and
marks each Job the controller creates as failed, as the Job controller does once the pod's
retries are used up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace

from rollwise.testing.kubeapi import ApiServer
from tests.kube.controller_harness import (
    NS,
    ControllerThread,
    ReadinessDriver,
    events,
    replicasets,
    settle,
    status,
)
from tests.kube.test_controller import create, healthy, revision_of, service, set_image
from tests.kube.test_controller_jobs import JobDriver, analysed, smoke_template

pytestmark = pytest.mark.asyncio

FAILED = {
    "failed": 1,
    "conditions": [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    ],
}


@pytest_asyncio.fixture
async def failing(api: ApiServer, client: AsyncClient) -> AsyncIterator[JobDriver]:
    await client.get(Namespace, NS)
    await service(client, "web-stable")
    await service(client, "web-canary")
    controller = ControllerThread(api).start()
    async with ReadinessDriver(api, client), JobDriver(api, client, answer=FAILED) as driver:
        try:
            await controller.wait_started()
            yield driver
        finally:
            await controller.stop()


async def test_a_failed_job_fails_the_analysis_step_and_aborts(
    api: ApiServer, client: AsyncClient, failing: JobDriver
) -> None:
    await smoke_template(client, "5m")
    doc: dict[str, Any] = analysed()
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: status(api, "web").get("phase") == "Aborted")
    await settle(api, lambda: replicasets(api, "web") == {v1: 4, v2: 0})
    assert status(api, "web")["abort"]["revision"] == v2
    assert len(failing.seen) == 1
    failed = [e[2] for e in events(api, "web") if e[0] == "Warning" and e[1] == "AnalysisFailed"]
    assert failed and "BackoffLimitExceeded" in failed[0], failed
