"""How a Rollout points at analysis: templates by name plus the arguments it fills in."""

from __future__ import annotations

from pydantic import Field

from rollwise.spec.common import DnsSubdomain, NonNegativeInt, Spec


class FieldRef(Spec):
    field_path: str = Field(alias="fieldPath", min_length=1)


class ArgValueFrom(Spec):
    """An argument's value taken from the Rollout itself, e.g. `metadata.name` or
    `status.canaryRevision`, resolved when the analysis run starts."""

    field_ref: FieldRef = Field(alias="fieldRef")


class AnalysisArgValue(Spec):
    at_most_one_of = ("value", "value_from")

    name: str = Field(min_length=1)
    value: str | None = None
    value_from: ArgValueFrom | None = Field(default=None, alias="valueFrom")


class TemplateRef(Spec):
    template_name: DnsSubdomain = Field(alias="templateName")
    cluster_scope: bool = Field(default=False, alias="clusterScope")


class RolloutAnalysis(Spec):
    """Analysis run from a step, around a promotion, or in the background of a canary."""

    templates: list[TemplateRef] = Field(min_length=1)
    args: list[AnalysisArgValue] | None = None


class BackgroundAnalysis(RolloutAnalysis):
    """Analysis that runs for the whole canary, starting at a step (default: the first)."""

    starting_step: NonNegativeInt | None = Field(default=None, alias="startingStep")
