from __future__ import annotations

from pydantic import Field

from rollwise.spec.common import IntOrPercent, Spec


class RollingUpdateStrategy(Spec):
    """Replace replicas a few at a time, as a Deployment does; traffic follows ready replicas."""

    max_surge: IntOrPercent = Field(default="25%", alias="maxSurge")
    max_unavailable: IntOrPercent = Field(default="25%", alias="maxUnavailable")
