"""FlagSet: feature toggles in the OpenFeature flagd flag-definition shape, so applications read
them with a standard OpenFeature SDK and flagd provider."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from rollwise.spec.common import API_VERSION, ApiVersion, ObjectMeta, Spec
from rollwise.spec.workload import OpenObject

FlagValue = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]


class Flag(Spec):
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    variants: dict[str, FlagValue] = Field(min_length=1)
    default_variant: str = Field(alias="defaultVariant")
    targeting: OpenObject | None = Field(
        default=None, description="A JsonLogic rule returning a variant name (flagd targeting)."
    )
    metadata: dict[str, FlagValue] | None = None


class FlagEnv(Spec):
    """Expose a flag's resolved default as an environment variable. Env is read at process start,
    so a change here needs a new revision; the mounted flags file changes without a restart."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    flag: str


class FlagSetSpec(Spec):
    flags: dict[str, Flag] = Field(min_length=1)
    evaluators: dict[str, OpenObject] | None = Field(
        default=None, alias="$evaluators", description="Shared targeting rules, referenced with $ref."
    )
    env: list[FlagEnv] | None = None


class FlagSet(Spec):
    api_version: ApiVersion = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["FlagSet"] = "FlagSet"
    metadata: ObjectMeta
    spec: FlagSetSpec

    def flagd_document(self) -> dict[str, Any]:
        """The document the flagd provider reads (what goes in the ConfigMap's flags.json)."""
        doc: dict[str, Any] = {
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {k: v.to_dict() for k, v in self.spec.flags.items()},
        }
        if self.spec.evaluators:
            doc["$evaluators"] = self.spec.evaluators
        return doc
