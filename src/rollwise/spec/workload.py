"""What a revision runs: a Kubernetes pod template, a local process, or an existing Deployment."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from rollwise.spec.common import NonNegativeInt, PositiveInt, Spec

OpenObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class TemplateMeta(Spec):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodTemplate(Spec):
    """A Kubernetes PodTemplateSpec. Its `spec` is the Pod's own, checked by `rollwise lint`
    against the Kubernetes schema rather than re-modelled here."""

    metadata: TemplateMeta | None = None
    spec: OpenObject

    def images(self) -> list[tuple[str, str]]:
        """(field path below `spec`, image) for every container and init container."""
        out: list[tuple[str, str]] = []
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for i, container in enumerate(self.spec.get(key) or []):
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    out.append((f"{key}[{i}].image", container["image"]))
        return out


class ReadinessProbe(Spec):
    path: str = Field(default="/healthz", pattern=r"^/")
    period_seconds: PositiveInt = Field(default=1, alias="periodSeconds")
    timeout_seconds: PositiveInt = Field(default=1, alias="timeoutSeconds")
    failure_threshold: PositiveInt = Field(default=3, alias="failureThreshold")
    success_threshold: PositiveInt = Field(default=1, alias="successThreshold")


class ProcessTemplate(Spec):
    """A revision on the local platform: a command run directly (argv, never through a shell).
    Each replica gets a free port in the environment variable named by `portEnv`, plus
    ROLLWISE_REVISION and ROLLWISE_REPLICA; `$(NAME)` in an argument expands from that environment."""

    command: list[str] = Field(min_length=1)
    env: dict[str, str] | None = None
    working_dir: str | None = Field(default=None, alias="workingDir")
    port_env: str = Field(default="PORT", alias="portEnv", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    readiness_probe: ReadinessProbe = Field(default_factory=ReadinessProbe, alias="readinessProbe")
    termination_grace_period_seconds: NonNegativeInt = Field(default=10, alias="terminationGracePeriodSeconds")


class WorkloadRef(Spec):
    """Take the pod template from an existing Deployment (migration from a plain Deployment)."""

    api_version: Literal["apps/v1"] = Field(default="apps/v1", alias="apiVersion")
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(min_length=1)
    scale_down: Literal["never", "onsuccess", "progressively"] = Field(default="never", alias="scaleDown")


class ImmutablePolicy(Spec):
    """Revisions must be reproducible: `tagged` rejects images without a tag or tagged `latest`
    unless pinned by digest, `digest` requires a digest on every image, `off` allows anything."""

    images: Literal["tagged", "digest", "off"] = "tagged"
