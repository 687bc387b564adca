"""The job provider on Kubernetes against the emulated API server. The emulator runs no pods, so a
small driver plays the Job controller: it waits for the Job the measurement creates and sets its
status (Complete, Failed, DeadlineExceeded), or leaves it running to test the timeout."""

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

from rollwise.analysis.args import Args
from rollwise.analysis.providers import measure_safely
from rollwise.analysis.providers.kubernetes_job import (
    LABEL_METRIC,
    LABEL_ROLLOUT,
    LABEL_RUN,
    KubernetesJobs,
    RolloutOwner,
    job_manifest,
    jobs_of_run,
    uses_jobs,
)
from rollwise.spec.analysis import Measurement
from rollwise.testing.kubeapi import ApiServer
from tests.analysis.helpers import context, metric
from tests.kube.helpers import Rollout, rollout, wait_until

RUN = "web-5d8f7c9b4-2-step1"
CHECK = {
    "backoffLimit": 0,
    "template": {
        "spec": {
            "containers": [
                {
                    "name": "smoke",
                    "image": "registry.example/smoke:1.4",
                    "args": ["--url", "http://web-canary.{{args.namespace}}.svc/healthz"],
                }
            ]
        }
    },
}


def job_metric(timeout: str = "30s", spec: dict[str, Any] | None = None) -> Any:
    return metric(name="smoke-test", provider={"job": {"spec": spec or CHECK, "timeout": timeout}})


@pytest_asyncio.fixture
async def jobs(client: AsyncClient) -> AsyncIterator[KubernetesJobs]:
    owner = await client.create(rollout("web"), namespace="default")
    assert owner.metadata is not None and owner.metadata.uid is not None
    yield KubernetesJobs(client, "default", RolloutOwner("web", owner.metadata.uid), RUN)


async def first_job(client: AsyncClient) -> Job:
    async with contextlib.aclosing(client.watch(Job, namespace="default", labels={LABEL_RUN: RUN})) as events:
        async for kind, job in events:
            if kind == "ADDED":
                return job
    raise AssertionError("the watch ended without a Job")


async def set_status(client: AsyncClient, job: Job, status: dict[str, Any]) -> None:
    assert job.metadata is not None and job.metadata.name is not None
    await client.patch(
        Job.Status, job.metadata.name, {"status": status}, namespace="default", patch_type=PatchType.MERGE
    )


def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message}


async def measure_while(jobs: KubernetesJobs, m: Any, status: dict[str, Any] | None) -> tuple[Measurement, Job]:
    """Measure `m`; the driver sets `status` on the Job once it exists (None: never)."""
    args = Args({"namespace": "shop"})
    measuring = asyncio.create_task(measure_safely(m, args, context(kubernetes_jobs=jobs)))
    job = await asyncio.wait_for(first_job(jobs.client), 10)
    if status is not None:
        await set_status(jobs.client, job, status)
    return await asyncio.wait_for(measuring, 30), job


@pytest.mark.asyncio
async def test_the_job_is_made_from_the_spec_owned_by_the_rollout_and_valid(jobs: KubernetesJobs) -> None:
    manifest = job_manifest(jobs, job_metric(), Args({"namespace": "shop"}))
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    assert manifest["metadata"]["generateName"] == f"{RUN}-smoke-test-"
    assert manifest["metadata"]["labels"] == {LABEL_ROLLOUT: "web", LABEL_RUN: RUN, LABEL_METRIC: "smoke-test"}
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "rollwise.dev/v1alpha1",
            "kind": "Rollout",
            "name": "web",
            "uid": jobs.owner.uid,
            "blockOwnerDeletion": True,
        }
    ]
    spec = manifest["spec"]
    assert spec["template"]["spec"]["containers"][0]["args"][1] == "http://web-canary.shop.svc/healthz"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 30 and spec["backoffLimit"] == 0
    assert CHECK["template"]["spec"]["containers"][0]["args"][1].endswith("{{args.namespace}}.svc/healthz")  # type: ignore[index]


@pytest.mark.asyncio
async def test_a_complete_job_is_successful_and_goes_with_its_rollout(api: ApiServer, jobs: KubernetesJobs) -> None:
    m, job = await measure_while(
        jobs, job_metric(), {"succeeded": 1, "conditions": [condition("Complete", "Completed", "")]}
    )
    assert job.metadata is not None and job.metadata.name is not None
    assert m.phase == "Successful", m.message
    assert m.message == f"Job default/{job.metadata.name} completed (1 succeeded)"
    # What the server stored is what was sent, and valid for Kubernetes 1.33.
    stored = api.get_object("batch/v1", "Job", "default", job.metadata.name)
    assert stored is not None
    sent = {k: v for k, v in stored.items() if k != "status"}
    sent["metadata"] = {k: stored["metadata"][k] for k in ("name", "namespace", "labels", "ownerReferences")}
    kubernetes_validate.validate(sent, "1.33", strict=True)
    # Owned by the Rollout: deleting the Rollout collects the Job.
    await jobs.client.delete(Rollout, "web", namespace="default")
    await wait_until(api, lambda: api.get_object("batch/v1", "Job", "default", job.metadata.name) is None)


@pytest.mark.asyncio
async def test_a_failed_job_is_failed_with_its_reason(jobs: KubernetesJobs) -> None:
    m, job = await measure_while(
        jobs,
        job_metric(),
        {
            "failed": 1,
            "conditions": [condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
        },
    )
    assert job.metadata is not None
    assert m.phase == "Failed"
    assert m.message == (
        f"Job default/{job.metadata.name} failed (1 failed pods): "
        "BackoffLimitExceeded: Job has reached the specified backoff limit"
    )


@pytest.mark.asyncio
async def test_a_job_past_its_deadline_is_an_error(jobs: KubernetesJobs) -> None:
    m, _ = await measure_while(
        jobs,
        job_metric(),
        {"conditions": [condition("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")]},
    )
    assert m.phase == "Error"
    assert "did not finish within its activeDeadlineSeconds (DeadlineExceeded:" in (m.message or "")


@pytest.mark.asyncio
async def test_no_verdict_within_the_timeout_is_an_error_and_the_job_is_deleted(
    api: ApiServer, jobs: KubernetesJobs
) -> None:
    m, job = await measure_while(jobs, job_metric(timeout="1s"), None)
    assert job.metadata is not None and job.metadata.name is not None
    assert m.phase == "Error"
    assert m.message == f"Job default/{job.metadata.name} did not finish within 1s and was deleted"
    assert api.get_object("batch/v1", "Job", "default", job.metadata.name) is None


@pytest.mark.asyncio
async def test_an_unknown_argument_is_an_error_and_no_job_is_made(api: ApiServer, jobs: KubernetesJobs) -> None:
    spec = {"template": {"spec": {"containers": [{"name": "c", "image": "x", "args": ["{{args.nope}}"]}]}}}
    m = await measure_safely(job_metric(spec=spec), Args({}), context(kubernetes_jobs=jobs))
    assert m.phase == "Error"
    assert "uses {{args.nope}}, but no argument 'nope' was given" in (m.message or "")
    listed = [j async for j in jobs.client.list(Job, namespace="default")]
    assert listed == []


@pytest.mark.asyncio
async def test_a_misspelt_field_is_an_error_naming_it_and_no_job_is_made(jobs: KubernetesJobs) -> None:
    spec = {"backofLimit": 1, "template": {"spec": {"containers": [{"name": "c", "image": "x", "comand": ["x"]}]}}}
    m = await measure_safely(job_metric(spec=spec), Args({}), context(kubernetes_jobs=jobs))
    assert m.phase == "Error"
    assert m.message == "metric 'smoke-test': provider.job.spec.backofLimit is not a field of a JobSpec"
    nested = {"template": {"spec": {"containers": [{"name": "c", "image": "x", "comand": ["x"]}]}}}
    m = await measure_safely(job_metric(spec=nested), Args({}), context(kubernetes_jobs=jobs))
    assert m.message == (
        "metric 'smoke-test': provider.job.spec.template.spec.containers[0].comand is not a field of a JobSpec"
    )
    assert [j async for j in jobs.client.list(Job, namespace="default")] == []


@pytest.mark.asyncio
async def test_long_names_still_make_a_valid_job(jobs: KubernetesJobs) -> None:
    long_run = "a-rollout-with-a-rather-long-name-7f9c8d6b5a-12-background-r3"
    long_jobs = KubernetesJobs(jobs.client, jobs.namespace, jobs.owner, long_run)
    m = metric(name="Smoke_Test.v2-" + "x" * 60, provider={"job": {"spec": CHECK}})
    manifest = job_manifest(long_jobs, m, Args({"namespace": "shop"}))
    kubernetes_validate.validate(manifest, "1.33", strict=True)
    meta = manifest["metadata"]
    assert len(meta["generateName"]) <= 58 and meta["generateName"].endswith("-")
    assert all(len(v) <= 63 for v in meta["labels"].values()), meta["labels"]
    created = await jobs.client.create(Job.from_dict(manifest))  # type: ignore[call-overload]
    assert created.metadata.name.startswith(meta["generateName"]) and len(created.metadata.name) <= 63


@pytest.mark.asyncio
async def test_a_runs_jobs_are_owned_by_the_rollout_read_from_the_api(client: AsyncClient) -> None:
    created = await client.create(rollout("web"), namespace="default")
    jobs = await jobs_of_run(client, "default", "web", RUN)
    assert jobs.owner == RolloutOwner("web", created.metadata.uid) and jobs.run == RUN
    assert uses_jobs([job_metric()]) and not uses_jobs([metric(name="hook")])
