"""AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun: what to measure, how often, and which
CEL conditions turn a measurement into a verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollwise.spec.common import (
    API_VERSION,
    ApiVersion,
    Duration,
    NonNegativeInt,
    ObjectMeta,
    PositiveInt,
    Spec,
)
from rollwise.spec.workload import OpenObject


class EnvRef(Spec):
    """A secret read from the environment of whoever runs the analysis (the local daemon or the
    controller), so it never appears in a spec."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretKeyRef(Spec):
    name: str
    key: str


class SecretSource(Spec):
    exactly_one_of = ("from_env", "secret_key_ref")

    from_env: str | None = Field(default=None, alias="fromEnv", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_key_ref: SecretKeyRef | None = Field(default=None, alias="secretKeyRef")


class BasicAuth(Spec):
    username: SecretSource
    password: SecretSource


class HttpAuth(Spec):
    exactly_one_of = ("bearer", "basic")

    bearer: SecretSource | None = None
    basic: BasicAuth | None = None


class PrometheusRange(Spec):
    """Evaluate as a range query over [now-`window`, now] at `step`; the result is a list."""

    window: Duration
    step: Duration = "30s"


class PrometheusProvider(Spec):
    address: str = Field(pattern=r"^https?://")
    query: str = Field(min_length=1)
    range: PrometheusRange | None = None
    timeout: Duration = "10s"
    auth: HttpAuth | None = None


BuiltinMetric = Literal[
    "success-rate",
    "error-rate",
    "request-count",
    "latency-p50",
    "latency-p90",
    "latency-p95",
    "latency-p99",
    "latency-mean",
]


class BuiltinProvider(Spec):
    """Figures the router already counts per revision: on the local platform straight from the
    proxy, on Kubernetes through the mesh's or ingress's own Prometheus metrics. Rates are
    fractions (0.99), latencies milliseconds, counts requests, all over `window`."""

    metric: BuiltinMetric
    revision: Literal["canary", "stable"] = Field(
        default="canary",
        description="canary: the new revision (canary, blue-green preview, shadow or A/B candidate).",
    )
    window: Duration = "1m"


class Header(Spec):
    name: str = Field(min_length=1)
    value: str


class WebhookProvider(Spec):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST"] = "GET"
    headers: list[Header] | None = None
    body: str | None = None
    json_path: str | None = Field(
        default=None, alias="jsonPath", description="Selects the result from the JSON reply, e.g. $.data.ok"
    )
    timeout: Duration = "10s"
    retries: NonNegativeInt = 2
    auth: HttpAuth | None = None


class JobProvider(Spec):
    """A check whose exit status is the verdict: a command on the local platform, a Kubernetes Job
    (`spec` is a JobSpec) on a cluster."""

    exactly_one_of = ("command", "spec")

    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] | None = None
    spec: OpenObject | None = None
    timeout: Duration = "5m"


class MetricProvider(Spec):
    exactly_one_of = ("prometheus", "builtin", "webhook", "job")

    prometheus: PrometheusProvider | None = None
    builtin: BuiltinProvider | None = None
    webhook: WebhookProvider | None = None
    job: JobProvider | None = None

    @property
    def name(self) -> str:
        for key in self.exactly_one_of:
            if getattr(self, key) is not None:
                return key
        raise AssertionError("validated MetricProvider has a provider")


class Metric(Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    provider: MetricProvider
    interval: Duration | None = None
    initial_delay: Duration | None = Field(default=None, alias="initialDelay")
    count: PositiveInt | None = Field(
        default=None,
        description="Measurements to take. Absent: one without an interval, else until the run is stopped.",
    )
    success_condition: str | None = Field(default=None, alias="successCondition")
    failure_condition: str | None = Field(default=None, alias="failureCondition")
    failure_limit: NonNegativeInt = Field(default=0, alias="failureLimit")
    inconclusive_limit: NonNegativeInt = Field(default=0, alias="inconclusiveLimit")
    consecutive_error_limit: NonNegativeInt = Field(default=4, alias="consecutiveErrorLimit")
    dry_run: bool = Field(default=False, alias="dryRun")


class Argument(Spec):
    """A template parameter, written `{{args.NAME}}` in queries, URLs and commands."""

    at_most_one_of = ("value", "value_from")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    value: str | None = None
    value_from: SecretSource | None = Field(default=None, alias="valueFrom")


class AnalysisTemplateSpec(Spec):
    args: list[Argument] | None = None
    metrics: list[Metric] = Field(min_length=1)


class AnalysisTemplate(Spec):
    api_version: ApiVersion = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class ClusterAnalysisTemplate(Spec):
    api_version: ApiVersion = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["ClusterAnalysisTemplate"] = "ClusterAnalysisTemplate"
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


Verdict = Literal["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]


class Measurement(Spec):
    phase: Verdict
    value: str | None = None
    message: str | None = None
    started_at: str | None = Field(default=None, alias="startedAt")
    finished_at: str | None = Field(default=None, alias="finishedAt")


class MetricResult(Spec):
    name: str
    phase: Verdict
    message: str | None = None
    dry_run: bool = Field(default=False, alias="dryRun")
    count: NonNegativeInt = 0
    successful: NonNegativeInt = 0
    failed: NonNegativeInt = 0
    inconclusive: NonNegativeInt = 0
    error: NonNegativeInt = 0
    consecutive_error: NonNegativeInt = Field(default=0, alias="consecutiveError")
    measurements: list[Measurement] | None = None


class AnalysisRunStatus(Spec):
    model_config = Spec.model_config | {"strict": False}

    phase: Verdict = "Pending"
    message: str | None = None
    started_at: str | None = Field(default=None, alias="startedAt")
    metric_results: list[MetricResult] | None = Field(default=None, alias="metricResults")


class AnalysisRunSpec(Spec):
    args: list[Argument] | None = None
    metrics: list[Metric] = Field(min_length=1)
    terminate: bool = False


class AnalysisRun(Spec):
    api_version: ApiVersion = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["AnalysisRun"] = "AnalysisRun"
    metadata: ObjectMeta
    spec: AnalysisRunSpec
    status: AnalysisRunStatus | None = None
