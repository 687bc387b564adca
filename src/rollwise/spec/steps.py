"""Canary steps. Each step is a mapping with exactly one key, as in `- setWeight: 20`."""

from __future__ import annotations

from pydantic import Field, field_validator

from rollwise.spec.analysis_ref import RolloutAnalysis
from rollwise.spec.common import Duration, MirrorPercent, NonNegativeInt, Spec, Weight
from rollwise.spec.match import RouteMatch


class Pause(Spec):
    """Wait for `duration`, or until a human promotes when no duration is given."""

    duration: Duration | None = None


class SetCanaryScale(Spec):
    """Size the canary independently of its traffic weight (e.g. warm it up before shifting)."""

    exactly_one_of = ("replicas", "weight", "match_traffic_weight")

    replicas: NonNegativeInt | None = None
    weight: Weight | None = None
    match_traffic_weight: bool | None = Field(default=None, alias="matchTrafficWeight")


class SetHeaderRoute(Spec):
    """Send requests that satisfy `match` to the canary whatever its weight. Without `match`, the
    named route is removed."""

    name: str = Field(min_length=1)
    match: list[RouteMatch] | None = None


class SetMirrorRoute(Spec):
    """Copy `percent` of the requests that satisfy `match` (all, when absent) to the canary; the
    copies' responses are discarded. Without `percent`, the named mirror route is removed."""

    name: str = Field(min_length=1)
    percent: MirrorPercent | None = None
    match: list[RouteMatch] | None = None


class CanaryStep(Spec):
    exactly_one_of = (
        "set_weight",
        "pause",
        "analysis",
        "set_canary_scale",
        "set_header_route",
        "set_mirror_route",
    )

    set_weight: Weight | None = Field(default=None, alias="setWeight")
    pause: Pause | None = None
    analysis: RolloutAnalysis | None = None
    set_canary_scale: SetCanaryScale | None = Field(default=None, alias="setCanaryScale")
    set_header_route: SetHeaderRoute | None = Field(default=None, alias="setHeaderRoute")
    set_mirror_route: SetMirrorRoute | None = Field(default=None, alias="setMirrorRoute")

    @field_validator("pause", mode="before")
    @classmethod
    def _bare_pause(cls, value: object) -> object:
        # `- pause:` with nothing after it reads as null in YAML; it means "wait for a human".
        return {} if value is None else value

    @property
    def kind(self) -> str:
        for name in self.exactly_one_of:
            if getattr(self, name) is not None:
                return type(self).model_fields[name].alias or name
        raise AssertionError("validated CanaryStep has a kind")
