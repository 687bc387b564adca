"""Ready PromQL for the builtin metrics on Kubernetes, per router, from the metrics each router
already exports. Rates are fractions, latencies milliseconds, counts requests, over `{{window}}`.

Placeholders are `{{name}}`; each router names the labels that select one revision:
- istio: `namespace` and `service` (the canary or stable Service), from `istio_requests_total`
  and `istio_request_duration_milliseconds` as reported by the destination.
- gatewayapi (Envoy Gateway): `cluster`, the Envoy cluster of one backendRef, named
  `httproute/<namespace>/<route>/rule/<rule index>/backend/<backendRef index>`.
- nginx (ingress-nginx): `namespace` and `service`; its durations are seconds, scaled to ms here.

Error numerators are `or vector(0)`: a router creates no 5xx series until the first 5xx, and
"no errors yet" must read 0, while a missing request series (no traffic) stays empty = no data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rollwise.spec.analysis import BuiltinMetric

_QUANTILES: dict[BuiltinMetric, str] = {
    "latency-p50": "0.5",
    "latency-p90": "0.9",
    "latency-p95": "0.95",
    "latency-p99": "0.99",
}


@dataclass(frozen=True)
class RouterMetrics:
    description: str
    labels: tuple[str, ...]
    templates: Mapping[BuiltinMetric, str]


def _family(*, requests: str, errors: str, histogram: str, scale: str = "") -> dict[BuiltinMetric, str]:
    """`requests` and `errors` are series selectors; `histogram` a selector without its suffix,
    written NAME{LABELS}."""
    name, _, labels = histogram.partition("{")
    labels = "{" + labels

    def rate(series: str) -> str:
        return f"sum(rate({series}[{{{{window}}}}]))"

    total = rate(requests)
    failed = f"({rate(errors)} or vector(0))"
    out: dict[BuiltinMetric, str] = {
        "request-count": f"sum(increase({requests}[{{{{window}}}}]))",
        "error-rate": f"{failed} / {total}",
        "success-rate": f"1 - {failed} / {total}",
        "latency-mean": f"{scale}{rate(name + '_sum' + labels)} / {rate(name + '_count' + labels)}",
    }
    for metric, q in _QUANTILES.items():
        buckets = f"sum by (le) (rate({name}_bucket{labels}[{{{{window}}}}]))"
        out[metric] = f"{scale}histogram_quantile({q}, {buckets})"
    return out


_ISTIO = 'reporter="destination",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}"'
_ENVOY = 'envoy_cluster_name="{{cluster}}"'
_NGINX = 'namespace="{{namespace}}",service="{{service}}"'

TEMPLATES: dict[str, RouterMetrics] = {
    "istio": RouterMetrics(
        description="Istio standard metrics, reported by the destination's sidecar",
        labels=("namespace", "service"),
        templates=_family(
            requests=f"istio_requests_total{{{_ISTIO}}}",
            errors=f'istio_requests_total{{{_ISTIO},response_code=~"5.."}}',
            histogram=f"istio_request_duration_milliseconds{{{_ISTIO}}}",
        ),
    ),
    "gatewayapi": RouterMetrics(
        description="Envoy Gateway: the Envoy upstream cluster of one HTTPRoute backendRef",
        labels=("cluster",),
        templates=_family(
            requests=f"envoy_cluster_upstream_rq_total{{{_ENVOY}}}",
            errors=f'envoy_cluster_upstream_rq_xx{{{_ENVOY},envoy_response_code_class="5"}}',
            histogram=f"envoy_cluster_upstream_rq_time{{{_ENVOY}}}",
        ),
    ),
    "nginx": RouterMetrics(
        description="ingress-nginx controller metrics, per backend Service (durations in seconds, scaled to ms)",
        labels=("namespace", "service"),
        templates=_family(
            requests=f"nginx_ingress_controller_requests{{{_NGINX}}}",
            errors=f'nginx_ingress_controller_requests{{{_NGINX},status=~"5.."}}',
            histogram=f"nginx_ingress_controller_request_duration_seconds{{{_NGINX}}}",
            scale="1000 * ",
        ),
    ),
}


class TemplateError(ValueError):
    pass


def render(router: str, metric: BuiltinMetric, labels: Mapping[str, str], window: str) -> str:
    """The query for `metric` of one revision behind `router`; label values are quoted for PromQL."""
    known = TEMPLATES.get(router)
    if known is None:
        raise TemplateError(f"no PromQL templates for router {router!r} (known: {', '.join(sorted(TEMPLATES))})")
    missing = [name for name in known.labels if name not in labels]
    if missing:
        raise TemplateError(f"the {router} templates need label values for {', '.join(missing)}")
    text = known.templates[metric].replace("{{window}}", window)
    for name in known.labels:
        text = text.replace("{{" + name + "}}", _escape(labels[name]))
    return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
