"""The impure edge of a run: measure what is due, concurrently, and record it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from rollwise.analysis.providers import MeasureContext, Provider, measure_safely
from rollwise.analysis.run import AnalysisRunState
from rollwise.spec.analysis import Metric


async def measure_due(
    run: AnalysisRunState,
    args: Mapping[str, str],
    context: MeasureContext,
    providers: Mapping[str, Provider] | None = None,
) -> list[str]:
    """Measure every metric due now (by `context.clock`), record the results, and return the names
    measured. Call again at `run.wake_at(...)`."""
    now = context.clock()
    due = run.due(now)
    for metric in due:
        run.begin(metric.name, now)

    async def one(metric: Metric) -> None:
        m = await measure_safely(metric, args, context, providers)
        run.record(metric.name, m, context.clock())

    await asyncio.gather(*(one(m) for m in due))
    return [m.name for m in due]
