"""The job provider on Kubernetes: a batch/v1 Job made from the metric's `provider.job.spec`
(a JobSpec, with `{{args.NAME}}` substituted in its strings), owned by the Rollout the analysis
run belongs to, whose completion is the verdict:

- condition Complete: Successful;
- condition Failed: Failed, with the Job's reason and message, except a Failed with reason
  DeadlineExceeded, which is an Error (the check did not run to a verdict);
- no verdict within the metric's `timeout`: Error, and the Job is deleted with its pods.

Defaults filled in when the spec leaves them out: `restartPolicy: Never` (a Job's pods may not
use the pod default, Always), `activeDeadlineSeconds` = the metric's timeout (so the cluster stops
the pods when Rollwise stops waiting), and `ttlSecondsAfterFinished` (finished Jobs do not pile up;
they also go with the Rollout, their owner)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.batch_v1 import Job
from lightkube.types import CascadeType

from rollwise.analysis.args import ArgumentError, redact, substitute
from rollwise.analysis.providers.base import MeasureContext, errored, measurement
from rollwise.spec.analysis import Measurement, Metric
from rollwise.spec.common import API_VERSION, duration_seconds

KEEP_FINISHED_SECONDS = 24 * 3600
_RolloutResource = create_namespaced_resource("rollwise.dev", "v1alpha1", "Rollout", "rollouts")
# Pods of a Job carry its name in a label (job-name), so the name must fit a label value (63
# characters): the prefix, a dash, and the 5 characters the server appends to a generateName.
_MAX_PREFIX = 63 - 5 - 1
LABEL_ROLLOUT = "rollwise.dev/rollout"
LABEL_RUN = "rollwise.dev/analysis-run"
LABEL_METRIC = "rollwise.dev/metric"


@dataclass(frozen=True)
class RolloutOwner:
    name: str
    uid: str


@dataclass(frozen=True)
class KubernetesJobs:
    """Where a run's Job measurements go: the client, the run's namespace, the Rollout that owns
    the Jobs, and the run's name (in the Jobs' names and labels)."""

    client: AsyncClient
    namespace: str
    owner: RolloutOwner
    run: str
    keep_finished_seconds: int = KEEP_FINISHED_SECONDS


def uses_jobs(metrics: Iterable[Metric]) -> bool:
    return any(m.provider.job is not None and m.provider.job.spec is not None for m in metrics)


async def jobs_of_run(client: AsyncClient, namespace: str, rollout: str, run: str) -> KubernetesJobs:
    """Where the Jobs of run `run` of Rollout `rollout` go; reads the Rollout for its uid (the Jobs'
    owner). ApiError when the Rollout cannot be read."""
    obj = await client.get(_RolloutResource, rollout, namespace=namespace)
    uid = obj.metadata.uid if obj.metadata is not None else None
    if not uid:
        raise ValueError(f"Rollout {namespace}/{rollout} has no uid")
    return KubernetesJobs(client, namespace, RolloutOwner(rollout, uid), run)


def job_manifest(jobs: KubernetesJobs, metric: Metric, args: Mapping[str, str]) -> dict[str, Any]:
    """The Job to create for one measurement of `metric`; ArgumentError for an unknown argument."""
    spec = metric.provider.job
    assert spec is not None and spec.spec is not None
    job_spec = _substituted(dict(spec.spec), args, f"metric {metric.name!r} job spec")
    if not isinstance(job_spec, dict):
        raise ArgumentError(f"metric {metric.name!r}: provider.job.spec must be a JobSpec object")
    job_spec.setdefault("activeDeadlineSeconds", max(1, math.ceil(duration_seconds(spec.timeout))))
    job_spec.setdefault("ttlSecondsAfterFinished", jobs.keep_finished_seconds)
    template = job_spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        template["spec"].setdefault("restartPolicy", "Never")
    prefix = _dns_label(f"{jobs.run}-{metric.name}")[:_MAX_PREFIX].rstrip("-")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": f"{prefix}-",
            "namespace": jobs.namespace,
            "labels": {
                LABEL_ROLLOUT: _label_value(jobs.owner.name),
                LABEL_RUN: _label_value(jobs.run),
                LABEL_METRIC: _label_value(metric.name),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Rollout",
                    "name": jobs.owner.name,
                    "uid": jobs.owner.uid,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


async def measure_with_job(
    jobs: KubernetesJobs, metric: Metric, args: Mapping[str, str], context: MeasureContext
) -> Measurement:
    spec = metric.provider.job
    assert spec is not None
    started = context.clock()
    timeout = duration_seconds(spec.timeout)
    try:
        manifest = job_manifest(jobs, metric, args)
        obj = cast(Job, Job.from_dict(manifest))
    except ArgumentError as exc:
        return errored(str(exc), started, context, args)
    except (TypeError, ValueError, AttributeError) as exc:
        return errored(f"metric {metric.name!r}: provider.job.spec is not a JobSpec: {exc}", started, context, args)
    # The client's models drop fields they do not know: a misspelt field would silently vanish.
    unknown = _dropped(manifest["spec"], obj.to_dict().get("spec") or {}, "provider.job.spec")
    if unknown is not None:
        return errored(f"metric {metric.name!r}: {unknown} is not a field of a JobSpec", started, context, args)
    client = jobs.client
    try:
        created = await client.create(obj)
    except ApiError as exc:
        return errored(
            f"the Job for metric {metric.name!r} was refused by the API server "
            f"(HTTP {exc.status.code}): {exc.status.message}",
            started,
            context,
            args,
        )
    assert created.metadata is not None and created.metadata.name is not None
    name = created.metadata.name
    try:
        async with asyncio.timeout(timeout):
            phase, message = await _verdict(client, jobs.namespace, name)
    except TimeoutError:
        await _delete(client, jobs.namespace, name)
        return errored(
            f"Job {jobs.namespace}/{name} did not finish within {timeout:g}s and was deleted", started, context, args
        )
    except asyncio.CancelledError:
        # The run was stopped: the Job's pods must not go on running for nobody.
        await asyncio.shield(_delete(client, jobs.namespace, name))
        raise
    except ApiError as exc:
        return errored(
            f"cannot follow Job {jobs.namespace}/{name}: HTTP {exc.status.code}: {exc.status.message}",
            started,
            context,
            args,
        )
    return measurement(phase, redact(message, args), started, context.clock())


async def _verdict(client: AsyncClient, namespace: str, name: str) -> tuple[str, str]:
    """Follow the Job until it finishes: (phase, message)."""
    shown = f"Job {namespace}/{name}"
    watch = cast(
        AsyncGenerator[tuple[str, Job], None],
        client.watch(Job, namespace=namespace, fields={"metadata.name": name}),
    )
    async with contextlib.aclosing(watch) as events:
        async for kind, job in events:
            if kind == "DELETED":
                return "Error", f"{shown} was deleted before it finished"
            status = job.status
            for c in (status.conditions if status is not None else None) or []:
                if c.status != "True":
                    continue
                detail = f"{c.reason}: {c.message}" if c.message else str(c.reason)
                if c.type == "Complete":
                    succeeded = status.succeeded if status is not None else None
                    return "Successful", f"{shown} completed ({succeeded or 0} succeeded)"
                if c.type == "Failed" and c.reason == "DeadlineExceeded":
                    return "Error", f"{shown} did not finish within its activeDeadlineSeconds ({detail})"
                if c.type == "Failed":
                    failed = status.failed if status is not None else None
                    return "Failed", f"{shown} failed ({failed or 0} failed pods): {detail}"
    return "Error", f"the watch of {shown} ended before the Job finished"


async def _delete(client: AsyncClient, namespace: str, name: str) -> None:
    with contextlib.suppress(ApiError):
        await client.delete(Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND)


def _dropped(sent: Any, kept: Any, path: str) -> str | None:
    """The path of the first field of `sent` missing from `kept`, if any."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            if value is None:
                continue
            if key not in kept:
                return f"{path}.{key}"
            found = _dropped(value, kept[key], f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(sent, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(sent, kept, strict=False)):
            found = _dropped(a, b, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _substituted(node: Any, args: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return substitute(node, args, where=where)
    if isinstance(node, dict):
        return {k: _substituted(v, args, where) for k, v in node.items()}
    if isinstance(node, list):
        return [_substituted(v, args, where) for v in node]
    return node


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "analysis"


def _label_value(text: str) -> str:
    # A label value: at most 63 characters, alphanumeric at both ends, [-_.a-zA-Z0-9] between.
    cleaned = re.sub(r"[^-_.a-zA-Z0-9]+", "-", text)[:63]
    return re.sub(r"^[^a-zA-Z0-9]+|[^a-zA-Z0-9]+$", "", cleaned)
