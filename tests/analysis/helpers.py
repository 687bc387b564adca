"""Small builders shared by the analysis tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from rollwise.analysis.providers.base import MeasureContext
from rollwise.spec.analysis import Metric

T = TypeVar("T")

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def metric(**fields: Any) -> Metric:
    """A Metric from YAML-style keys, with a placeholder provider unless one is given."""
    data: dict[str, Any] = {"name": "m", "provider": {"webhook": {"url": "http://127.0.0.1:1/"}}}
    data.update(fields)
    return Metric.model_validate(data)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def context(env: Mapping[str, str] | None = None, **kw: Any) -> MeasureContext:
    return MeasureContext(env=dict(env or {}), **kw)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
