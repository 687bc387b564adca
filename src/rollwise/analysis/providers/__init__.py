"""Metric providers, one module each, behind the `Provider` protocol."""

from __future__ import annotations

from collections.abc import Mapping

from rollwise.analysis.args import redact
from rollwise.analysis.providers.base import MeasureContext, Provider, measurement
from rollwise.analysis.providers.builtin import BuiltinMeasurer
from rollwise.analysis.providers.job import JobMeasurer
from rollwise.analysis.providers.prometheus import PrometheusMeasurer
from rollwise.analysis.providers.webhook import WebhookMeasurer
from rollwise.spec.analysis import Measurement, Metric

__all__ = ["MeasureContext", "Provider", "default_providers", "measure_safely"]


def default_providers() -> dict[str, Provider]:
    return {
        "prometheus": PrometheusMeasurer(),
        "builtin": BuiltinMeasurer(),
        "webhook": WebhookMeasurer(),
        "job": JobMeasurer(),
    }


async def measure_safely(
    metric: Metric,
    args: Mapping[str, str],
    context: MeasureContext,
    providers: Mapping[str, Provider] | None = None,
) -> Measurement:
    """Measure once; whatever goes wrong inside a provider becomes an Error measurement with the
    reason, so one broken provider cannot stop a run or the controller around it."""
    started = context.clock()
    chosen = (providers or default_providers()).get(metric.provider.name)
    if chosen is None:
        return measurement("Error", f"no {metric.provider.name} provider is available here", started, context.clock())
    try:
        return await chosen.measure(metric, args, context)
    except NotImplementedError as exc:
        return measurement("Error", f"not implemented: {exc}", started, context.clock())
    except Exception as exc:  # a provider bug must not take the controller down
        message = f"{metric.provider.name} provider failed: {type(exc).__name__}: {exc}"
        return measurement("Error", redact(message, args), started, context.clock())
