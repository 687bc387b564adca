"""Any valid resource survives YAML -> model -> YAML unchanged, through the same loader users get."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from pydantic import BaseModel, ValidationError

from rollwise.spec import KINDS
from rollwise.spec.loader import load_text
from tests.modelgen import for_model

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


def _roundtrip(model: type[BaseModel], data: dict[str, Any]) -> None:
    try:
        first = model.model_validate(data)
    except ValidationError:
        assume(False)
        raise AssertionError("unreachable") from None
    text = yaml.safe_dump(first.to_dict(), sort_keys=False, allow_unicode=True)  # type: ignore[attr-defined]
    loaded, foreign = load_text(text, "roundtrip.yaml")
    assert not foreign
    (item,) = loaded
    assert item.resource == first
    again = yaml.safe_dump(item.resource.to_dict(), sort_keys=False, allow_unicode=True)
    assert again == text


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_round_trips(kind: str) -> None:
    model = KINDS[kind]

    @SETTINGS
    @given(data=for_model(model))
    def check(data: dict[str, Any]) -> None:
        _roundtrip(model, data)

    check()


def test_generator_reaches_every_strategy() -> None:
    """The round trip is only as good as the data: make sure every strategy is generated and valid."""
    from rollwise.spec.rollout import Rollout

    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=for_model(Rollout))
    def collect(data: dict[str, Any]) -> None:
        try:
            ro = Rollout.model_validate(data)
        except ValidationError:
            return
        seen.add(ro.spec.strategy.name)

    collect()
    assert seen == {"recreate", "rollingUpdate", "blueGreen", "canary", "shadow", "abTest"}


def test_yaml_that_looks_like_other_types_stays_a_string() -> None:
    text = """
apiVersion: rollwise.dev/v1alpha1
kind: FlagSet
metadata: {name: dates}
spec:
  flags:
    launch:
      variants: {"on": "2026-01-01", "off": "no"}
      defaultVariant: "off"
"""
    (item,), _ = load_text(text, "f.yaml")
    flag = item.resource.spec.flags["launch"]  # type: ignore[union-attr]
    assert flag.variants == {"on": "2026-01-01", "off": "no"}
