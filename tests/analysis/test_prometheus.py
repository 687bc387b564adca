"""The Prometheus provider against a real Prometheus (Debian's package) on 127.0.0.1."""

from __future__ import annotations

import base64
import json

from rollwise.analysis.providers.prometheus import PrometheusMeasurer
from rollwise.spec.analysis import Measurement
from tests.analysis.helpers import context, metric, run
from tests.analysis.servers import RunningPrometheus, auth_proxy, silent_server
from tests.procs import free_port


def measure(address: str, query: str, *, env: dict[str, str] | None = None, **provider: object) -> Measurement:
    m = metric(
        name="q",
        provider={"prometheus": {"address": address, "query": query, **provider}},
        successCondition="result >= 0.99",
    )
    return run(PrometheusMeasurer().measure(m, {}, context(env)))


def test_instant_query_single_sample_is_a_number(prom: RunningPrometheus) -> None:
    m = measure(prom.address, "rollwise_test_ratio")
    assert m.phase == "Successful", m.message
    assert m.value == "0.995"
    assert m.started_at and m.finished_at


def test_failing_condition(prom: RunningPrometheus) -> None:
    m = measure(prom.address, "rollwise_test_ratio - 0.1")
    assert m.phase == "Failed"
    assert "does not meet successCondition 'result >= 0.99'" in (m.message or "")


def test_list_result_with_index_condition(prom: RunningPrometheus) -> None:
    m = run(
        PrometheusMeasurer().measure(
            metric(
                name="multi",
                provider={"prometheus": {"address": prom.address, "query": "sort(rollwise_test_multi)"}},
                successCondition="result[0] < 500 && size(result) == 2",
            ),
            {},
            context(),
        )
    )
    assert m.phase == "Successful", m.message
    assert json.loads(m.value or "") == [1.0, 2.0]


def test_range_query_gives_the_series_values(prom: RunningPrometheus) -> None:
    m = run(
        PrometheusMeasurer().measure(
            metric(
                name="range",
                provider={
                    "prometheus": {
                        "address": prom.address,
                        "query": "rollwise_test_ratio",
                        "range": {"window": "30s", "step": "1s"},
                    }
                },
                successCondition="result.all(x, x > 0.99)",
            ),
            {},
            context(),
        )
    )
    assert m.phase == "Successful", m.message
    values = json.loads(m.value or "")
    assert isinstance(values, list) and len(values) >= 2
    assert set(values) == {0.995}


def test_args_are_substituted_into_the_query(prom: RunningPrometheus) -> None:
    m = run(
        PrometheusMeasurer().measure(
            metric(
                name="args",
                provider={"prometheus": {"address": prom.address, "query": "rollwise_test_{{args.which}}"}},
                successCondition="result >= 0.99",
            ),
            {"which": "ratio"},
            context(),
        )
    )
    assert m.phase == "Successful", m.message


def test_missing_arg_is_an_error_naming_it(prom: RunningPrometheus) -> None:
    m = measure(prom.address, "rollwise_test_{{args.which}}")
    assert m.phase == "Error"
    assert "{{args.which}}" in (m.message or "") and "no argument 'which'" in (m.message or "")


def test_empty_vector_is_inconclusive_with_reason(prom: RunningPrometheus) -> None:
    m = measure(prom.address, 'sum(rate(rollwise_test_requests_total{job="nothing-here"}[1m]))')
    assert m.phase == "Inconclusive"
    assert "empty vector" in (m.message or "") and "no traffic" in (m.message or "")


def test_nan_is_inconclusive_never_zero(prom: RunningPrometheus) -> None:
    # 0/0: what an error ratio gives when no request came in.
    m = run(
        PrometheusMeasurer().measure(
            metric(
                name="nan",
                provider={"prometheus": {"address": prom.address, "query": "sum(rollwise_test_ratio) * 0 / 0"}},
                failureCondition="result > 0.05",
            ),
            {},
            context(),
        )
    )
    assert m.phase == "Inconclusive"
    assert "NaN" in (m.message or "") and "never read as 0" in (m.message or "")


def test_bad_query_is_an_error_with_prometheus_message(prom: RunningPrometheus) -> None:
    m = measure(prom.address, "sum(rate(")
    assert m.phase == "Error"
    assert "rejected the query (bad_data" in (m.message or "")


def test_prometheus_down_is_an_error() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    m = measure(address, "up")
    assert m.phase == "Error"
    assert f"cannot reach Prometheus at {address}" in (m.message or "")


def test_prometheus_slow_is_an_error_after_the_timeout() -> None:
    with silent_server() as port:
        m = measure(f"http://127.0.0.1:{port}", "up", timeout="300ms")
    assert m.phase == "Error"
    assert "did not answer within 0.3s" in (m.message or "")


def test_bearer_auth_from_env(prom: RunningPrometheus) -> None:
    with auth_proxy(prom.address, "Bearer s3cret") as port:
        address = f"http://127.0.0.1:{port}"
        auth = {"bearer": {"fromEnv": "PROM_TOKEN"}}
        ok = measure(address, "rollwise_test_ratio", env={"PROM_TOKEN": "s3cret"}, auth=auth)
        wrong = measure(address, "rollwise_test_ratio", env={"PROM_TOKEN": "nope"}, auth=auth)
        unset = measure(address, "rollwise_test_ratio", env={}, auth=auth)
    assert ok.phase == "Successful", ok.message
    assert wrong.phase == "Error" and "refused the credentials (HTTP 401)" in (wrong.message or "")
    assert unset.phase == "Error" and "PROM_TOKEN, which is not set" in (unset.message or "")


def test_basic_auth_from_env(prom: RunningPrometheus) -> None:
    expected = "Basic " + base64.b64encode(b"reader:pw").decode()
    with auth_proxy(prom.address, expected) as port:
        m = measure(
            f"http://127.0.0.1:{port}",
            "rollwise_test_ratio",
            env={"PROM_USER": "reader", "PROM_PASSWORD": "pw"},
            auth={"basic": {"username": {"fromEnv": "PROM_USER"}, "password": {"fromEnv": "PROM_PASSWORD"}}},
        )
    assert m.phase == "Successful", m.message
