"""An HTTP endpoint that answers JSON; `jsonPath` picks the result out of the reply.

Retries cover what a retry can fix (connection failures, timeouts, 429 and 5xx answers); a 4xx
answer or a reply that is not JSON is reported at once, since asking again gives the same answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from rollwise.analysis.args import ArgumentError, substitute
from rollwise.analysis.jsonpath import JsonPathError, NoMatch, parse
from rollwise.analysis.providers.base import (
    MeasureContext,
    MeasurementError,
    auth_headers,
    errored,
    judged,
    tls_context,
)
from rollwise.spec.analysis import Measurement, Metric, WebhookProvider
from rollwise.spec.common import duration_seconds

_SHOWN = 300


class WebhookMeasurer:
    """`backoff` is the first pause between attempts, doubled each time (0 in tests)."""

    def __init__(self, backoff: float = 0.5) -> None:
        self.backoff = backoff

    async def measure(self, metric: Metric, args: Mapping[str, str], context: MeasureContext) -> Measurement:
        spec = metric.provider.webhook
        assert spec is not None
        started = context.clock()
        try:
            url = substitute(spec.url, args, where=f"metric {metric.name!r} url")
            body = None if spec.body is None else substitute(spec.body, args, where=f"metric {metric.name!r} body")
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            for h in spec.headers or []:
                headers[h.name] = substitute(h.value, args, where=f"metric {metric.name!r} header {h.name}")
            headers.update(auth_headers(spec.auth, context))
            path = parse(spec.json_path) if spec.json_path else None
            document = await self._fetch(spec, url, body, headers)
        except (MeasurementError, ArgumentError, JsonPathError) as exc:
            return errored(str(exc), started, context, args)
        if path is None:
            return judged(metric, document, started, context, args)
        try:
            result = path.select(document)
        except NoMatch as exc:
            return errored(f"{exc}; the reply was {_short(document)}", started, context, args)
        return judged(metric, result, started, context, args)

    async def _fetch(self, spec: WebhookProvider, url: str, body: str | None, headers: dict[str, str]) -> Any:
        timeout = duration_seconds(spec.timeout)
        attempts = spec.retries + 1
        problem = ""
        async with httpx.AsyncClient(timeout=timeout, verify=tls_context()) as client:
            for attempt in range(attempts):
                if attempt:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    reply = await client.request(spec.method, url, content=body, headers=headers)
                except httpx.TimeoutException:
                    problem = f"no answer within {timeout:g}s"
                    continue
                except httpx.HTTPError as exc:
                    problem = f"cannot connect: {exc or type(exc).__name__}"
                    continue
                if reply.status_code == 429 or reply.status_code >= 500:
                    problem = f"HTTP {reply.status_code}: {reply.text[:_SHOWN]!r}"
                    continue
                if reply.status_code >= 400:
                    raise MeasurementError(
                        f"webhook {spec.method} {url} answered HTTP {reply.status_code}: {reply.text[:_SHOWN]!r}"
                    )
                try:
                    return reply.json()
                except ValueError as exc:
                    raise MeasurementError(
                        f"webhook {spec.method} {url} replied with something that is not JSON: {reply.text[:_SHOWN]!r}"
                    ) from exc
        tries = "once" if attempts == 1 else f"{attempts} times"
        raise MeasurementError(f"webhook {spec.method} {url} failed {tries}; last: {problem}")


def _short(document: Any) -> str:
    text = json.dumps(document)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
