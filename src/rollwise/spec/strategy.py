from __future__ import annotations

from pydantic import Field, field_validator

from rollwise.spec.common import Spec
from rollwise.spec.strategies.abtest import ABTestStrategy
from rollwise.spec.strategies.bluegreen import BlueGreenStrategy
from rollwise.spec.strategies.canary import CanaryStrategy
from rollwise.spec.strategies.recreate import RecreateStrategy
from rollwise.spec.strategies.rolling import RollingUpdateStrategy
from rollwise.spec.strategies.shadow import ShadowStrategy

STRATEGY_FIELDS = ("recreate", "rolling_update", "blue_green", "canary", "shadow", "ab_test")


class Strategy(Spec):
    exactly_one_of = STRATEGY_FIELDS

    recreate: RecreateStrategy | None = None
    rolling_update: RollingUpdateStrategy | None = Field(default=None, alias="rollingUpdate")
    blue_green: BlueGreenStrategy | None = Field(default=None, alias="blueGreen")
    canary: CanaryStrategy | None = None
    shadow: ShadowStrategy | None = None
    ab_test: ABTestStrategy | None = Field(default=None, alias="abTest")

    @field_validator("recreate", mode="before")
    @classmethod
    def _bare_recreate(cls, value: object) -> object:
        # `recreate:` with nothing after it reads as null in YAML; it has no options, so it means {}.
        return {} if value is None else value

    @property
    def name(self) -> str:
        for key in STRATEGY_FIELDS:
            if getattr(self, key) is not None:
                return type(self).model_fields[key].alias or key
        raise AssertionError("validated Strategy has a strategy")
