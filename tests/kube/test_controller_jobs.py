"""Job metrics through the controller, from a ClusterAnalysisTemplate: a canary's analysis step runs
one Job per measurement, owned by the Rollout; a Job that completes passes the step, a Job still
running at the metric's timeout is deleted and the run ends in Error, which pauses the rollout.
The emulator runs no pods: a small driver plays the Job controller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kubernetes_validate
import pytest
import pytest_asyncio
from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.types import PatchType

from rollwise.platforms.kubernetes.names import ClusterAnalysisTemplate
from rollwise.testing.kubeapi import ApiServer
from rollwise.testing.kubeapi.store import Event
from tests.kube.controller_harness import (
    NS,
    STABLE_AND_CANARY,
    controller_running,
    events,
    objects,
    settle,
    status,
    weights,
)
from tests.kube.test_controller import create, healthy, revision_of, set_image, spec, step

pytestmark = pytest.mark.asyncio

COMPLETE = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True", "reason": "Completed"}]}


class JobDriver:
    """The Job controller in miniature: every Job the controller creates gets `answer` as its status
    (Complete unless told otherwise), unless the test holds them (then they run until deleted)."""

    def __init__(self, api: ApiServer, client: AsyncClient, answer: dict[str, Any] | None = None) -> None:
        self.api = api
        self.client = client
        self.answer = answer or COMPLETE
        self.hold = False
        self.seen: set[str] = set()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> JobDriver:
        self.api.store.on_commit.append(self._on_commit)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.api.store.on_commit.remove(self._on_commit)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_commit(self, _: Event) -> None:
        self._dirty.set()

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            for job in list(objects(self.api, "batch/v1", "Job")):
                name = job["metadata"]["name"]
                self.seen.add(name)
                if self.hold or (job.get("status") or {}).get("conditions"):
                    continue
                await self.client.patch(
                    Job.Status, name, {"status": self.answer}, namespace=NS, patch_type=PatchType.MERGE
                )


@pytest_asyncio.fixture
async def jobs(api: ApiServer, client: AsyncClient) -> AsyncIterator[JobDriver]:
    async with controller_running(api, client, STABLE_AND_CANARY), JobDriver(api, client) as driver:
        yield driver


async def smoke_template(client: AsyncClient, timeout: str, error_limit: int = 4) -> None:
    await client.create(
        ClusterAnalysisTemplate.from_dict(
            {
                "apiVersion": "rollwise.dev/v1alpha1",
                "kind": "ClusterAnalysisTemplate",
                "metadata": {"name": "smoke"},
                "spec": {
                    "metrics": [
                        {
                            "name": "smoke-test",
                            "consecutiveErrorLimit": error_limit,
                            "provider": {
                                "job": {
                                    "timeout": timeout,
                                    "spec": {
                                        "backoffLimit": 0,
                                        "template": {
                                            "spec": {
                                                "containers": [
                                                    {
                                                        "name": "smoke",
                                                        "image": "registry.example/smoke:1.4",
                                                        "args": ["--url", "http://web-canary/healthz"],
                                                    }
                                                ]
                                            }
                                        },
                                    },
                                }
                            },
                        }
                    ]
                },
            }
        )
    )


def analysed() -> dict[str, Any]:
    steps = [
        {"setWeight": 25},
        {"analysis": {"templates": [{"templateName": "smoke", "clusterScope": True}]}},
        {"setWeight": 50},
        {"pause": {}},
    ]
    return spec({"canary": {"stableService": "web-stable", "canaryService": "web-canary", "steps": steps}})


def job_objects(api: ApiServer) -> list[dict[str, Any]]:
    return list(objects(api, "batch/v1", "Job"))


async def test_a_completed_job_passes_the_analysis_step(api: ApiServer, client: AsyncClient, jobs: JobDriver) -> None:
    await smoke_template(client, "5m")
    doc = analysed()
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    doc2 = await set_image(client, "web", doc, "example/app:2.0")
    v2 = revision_of(doc2)
    await settle(api, lambda: step(api, "web") == 3 and weights(api, "web") == {v1: 50, v2: 50})
    assert [r["verdict"] for r in status(api, "web")["analysisRuns"]] == ["Successful"]
    (job,) = job_objects(api)
    rollout = api.get_object("rollwise.dev/v1alpha1", "Rollout", NS, "web")
    assert rollout is not None
    assert [(o["kind"], o["name"], o["uid"]) for o in job["metadata"]["ownerReferences"]] == [
        ("Rollout", "web", rollout["metadata"]["uid"])
    ]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/smoke:1.4"
    kubernetes_validate.validate(
        {"apiVersion": "batch/v1", "kind": "Job", **{k: v for k, v in job.items() if k != "status"}},
        "1.33",
        strict=True,
    )
    assert any(e[1] == "AnalysisSuccessful" for e in events(api, "web"))


async def test_a_job_past_its_timeout_is_deleted_and_pauses_the_rollout(
    api: ApiServer, client: AsyncClient, jobs: JobDriver
) -> None:
    await smoke_template(client, "1s", error_limit=0)  # the first error ends the run
    doc = analysed()
    v1 = revision_of(doc)
    await create(client, "web", doc)
    await settle(api, lambda: healthy(api, "web", v1))
    jobs.hold = True
    await set_image(client, "web", doc, "example/app:2.0")
    await settle(api, lambda: status(api, "web").get("phase") == "Paused" and step(api, "web") == 1)
    assert "AnalysisError" in {p["reason"] for p in status(api, "web")["pauseConditions"]}
    (run,) = status(api, "web")["analysisRuns"]
    assert run["verdict"] == "Error"
    assert len(jobs.seen) == 1
    await settle(api, lambda: job_objects(api) == [])  # deleted, not left running for nobody
    assert any(e[1] == "AnalysisError" and "did not finish within 1s" in e[2] for e in events(api, "web"))
