"""Prometheus over its HTTP API: instant queries (`/api/v1/query`) and range queries
(`/api/v1/query_range`).

What `result` is, as in Argo Rollouts: a vector of one sample is that number, a vector of several a
list of numbers, a scalar a number; a range query gives the values of its one series as a list (a
list of lists for several series). An empty vector or matrix has no data and is Inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from rollwise.analysis.args import ArgumentError, substitute
from rollwise.analysis.conditions import Result
from rollwise.analysis.providers.base import (
    MeasureContext,
    MeasurementError,
    auth_headers,
    errored,
    judged,
    tls_context,
)
from rollwise.spec.analysis import Measurement, Metric
from rollwise.spec.analysis import PrometheusRange as RangeSpec
from rollwise.spec.common import duration_seconds

_BODY_SHOWN = 300


@dataclass(frozen=True)
class QueryAnswer:
    result: Result
    no_data: str | None
    warnings: tuple[str, ...] = ()


class PrometheusMeasurer:
    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        spec = metric.provider.prometheus
        assert spec is not None
        started = context.clock()
        try:
            query = substitute(spec.query, args, where=f"metric {metric.name!r} query")
            address = substitute(spec.address, args, where=f"metric {metric.name!r} address")
            answer = await query_prometheus(
                address,
                query,
                at=started,
                window=spec.range,
                timeout=duration_seconds(spec.timeout),
                headers=auth_headers(spec.auth, context),
            )
        except (MeasurementError, ArgumentError) as exc:
            return errored(str(exc), started, context, args)
        note = "Prometheus warned: " + "; ".join(answer.warnings) if answer.warnings else None
        return judged(metric, answer.result, started, context, args, no_data=answer.no_data, note=note)


async def query_prometheus(
    address: str,
    query: str,
    *,
    at: datetime,
    window: RangeSpec | None = None,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
) -> QueryAnswer:
    """Run one query; raise MeasurementError with a message a user can act on when it fails."""
    base = address.rstrip("/")
    params: dict[str, str] = {"query": query, "timeout": f"{timeout:g}s"}
    if window is None:
        url = f"{base}/api/v1/query"
        params["time"] = f"{at.timestamp():.3f}"
    else:
        url = f"{base}/api/v1/query_range"
        start = at - timedelta(seconds=duration_seconds(window.window))
        params.update(
            start=f"{start.timestamp():.3f}", end=f"{at.timestamp():.3f}", step=f"{duration_seconds(window.step):g}"
        )
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout, verify=tls_context()) as own:
                reply = await own.get(url, params=params, headers=dict(headers or {}))
        else:
            reply = await client.get(url, params=params, headers=dict(headers or {}), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise MeasurementError(f"Prometheus at {base} did not answer within {timeout:g}s") from exc
    except httpx.HTTPError as exc:
        raise MeasurementError(f"cannot reach Prometheus at {base}: {exc or type(exc).__name__}") from exc
    return _parse(base, reply)


def _parse(base: str, reply: httpx.Response) -> QueryAnswer:
    # Before the body: Prometheus' own basic auth answers a plain-text "Unauthorized".
    if reply.status_code in (401, 403):
        raise MeasurementError(f"Prometheus at {base} refused the credentials (HTTP {reply.status_code})")
    try:
        body: Any = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise MeasurementError(
            f"Prometheus at {base} answered HTTP {reply.status_code} with something that is not its API's JSON: "
            f"{reply.text[:_BODY_SHOWN]!r}"
        )
    if body.get("status") != "success":
        kind = body.get("errorType", "error")
        raise MeasurementError(
            f"Prometheus at {base} rejected the query ({kind}, HTTP {reply.status_code}): {body.get('error')}"
        )
    data = body.get("data") or {}
    warnings = tuple(str(w) for w in body.get("warnings") or ())
    kind, raw = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(raw, list):
        return QueryAnswer(_number(raw[1]), None, warnings)
    if kind == "string" and isinstance(raw, list):
        return QueryAnswer(str(raw[1]), None, warnings)
    if kind == "vector":
        if not raw:
            return QueryAnswer([], _EMPTY.format(kind="vector"), warnings)
        values = [_number(sample["value"][1]) for sample in raw]
        return QueryAnswer(values[0] if len(values) == 1 else list(values), None, warnings)
    if kind == "matrix":
        if not raw:
            return QueryAnswer([], _EMPTY.format(kind="matrix"), warnings)
        series: list[Result] = [[_number(v[1]) for v in s["values"]] for s in raw]
        return QueryAnswer(series[0] if len(series) == 1 else series, None, warnings)
    raise MeasurementError(f"Prometheus at {base} returned an unknown result type {kind!r}")


_EMPTY = (
    "the query returned an empty {kind}: no series matched in the window "
    "(no traffic yet, or a label value that matches nothing)"
)


def _number(text: str) -> float:
    # Prometheus spells special values NaN, +Inf and -Inf; float() reads all three.
    value = float(text)
    return math.nan if math.isnan(value) else value
