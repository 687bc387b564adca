"""CEL conditions, template arguments and the JSON path subset."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rollwise.analysis.args import ArgumentError, redact, resolve_args, substitute
from rollwise.analysis.conditions import assess, encode_result, evaluate, missing_data
from rollwise.analysis.jsonpath import JsonPathError, NoMatch, parse
from rollwise.spec.analysis import Argument, SecretKeyRef, SecretSource
from tests.analysis.helpers import metric

# --- conditions ----------------------------------------------------------------------------------


def conditions(success: str | None = None, failure: str | None = None) -> Any:
    fields: dict[str, Any] = {}
    if success:
        fields["successCondition"] = success
    if failure:
        fields["failureCondition"] = failure
    return metric(**fields)


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("result >= 0.99", 0.995, True),
        ("result >= 0.99", 1, True),  # an int result against a double literal
        ("result == 1", 1.0, True),  # a double result against an int literal
        ("1 == result", 1.0, True),
        ("result[0] < 500", [120.0, 900.0], True),
        ("result.all(x, x < 500)", [120.0, 900.0], False),
        ("result.data.ok", {"data": {"ok": True}}, True),
        ('result == "ok"', "ok", True),
        ("result != 2", 2.0, False),
    ],
)
def test_evaluate(expression: str, value: Any, expected: bool) -> None:
    assert evaluate(expression, value) is expected


def test_argo_rules_for_success_and_failure() -> None:
    only_success = conditions(success="result >= 0.99")
    assert assess(only_success, 0.995).phase == "Successful"
    assert assess(only_success, 0.98).phase == "Failed"
    only_failure = conditions(failure="result > 0.05")
    assert assess(only_failure, 0.01).phase == "Successful"
    assert assess(only_failure, 0.2).phase == "Failed"
    both = conditions(success="result < 0.01", failure="result > 0.05")
    assert assess(both, 0.001).phase == "Successful"
    assert assess(both, 0.2).phase == "Failed"
    middle = assess(both, 0.03)
    assert middle.phase == "Inconclusive" and "meets neither" in middle.message
    overlapping = conditions(success="result > 0", failure="result > 0.05")
    assert assess(overlapping, 0.2).phase == "Failed"  # failure wins


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no value (null)"),
        ([], "empty vector"),
        ({}, "empty object"),
        (math.nan, "result is NaN"),
        ([0.1, math.nan], "result[1] is NaN"),
        ({"a": {"b": math.nan}}, "result.a.b is NaN"),
    ],
)
def test_no_data_is_inconclusive_never_a_pass(value: Any, reason: str) -> None:
    # A failureCondition alone would pass on NaN (NaN > x is false): it must not.
    out = assess(conditions(failure="result > 0.05"), value)
    assert out.phase == "Inconclusive"
    assert reason in out.message and out.message.startswith("no data: ")
    assert missing_data(value) is not None


def test_provider_reason_for_no_data_wins() -> None:
    out = assess(conditions(success="result >= 0"), 0, no_data="no requests reached revision abc")
    assert out == out.__class__("Inconclusive", "no data: no requests reached revision abc")


def test_evaluation_errors_are_errors_with_the_message() -> None:
    out = assess(conditions(success="result[3] < 500"), [1.0])
    assert out.phase == "Error" and "list index out of range" in out.message
    out = assess(conditions(success="result >= 0.99"), "fast")
    assert out.phase == "Error" and "'>=' does not apply to string and double" in out.message
    out = assess(conditions(success="result + 1"), 1.0)
    assert out.phase == "Error" and "not true or false" in out.message
    out = assess(conditions(success="result >="), 1.0)
    assert out.phase == "Error" and "does not compile" in out.message
    assert assess(conditions(), 1.0).phase == "Error"


def test_values_are_stored_as_json_with_special_floats_spelled_out() -> None:
    assert encode_result([1.5, math.inf, {"a": None}]) == '[1.5,"+Inf",{"a":null}]'
    assert encode_result(math.nan) == '"NaN"'


# --- arguments -----------------------------------------------------------------------------------


def test_resolve_args_precedence_and_secrets() -> None:
    declared = [
        Argument(name="service", value="web"),
        Argument(name="namespace"),
        Argument(name="token", value_from=SecretSource(from_env="API_TOKEN")),
    ]
    args = resolve_args(declared, {"namespace": "shop", "service": "api"}, env={"API_TOKEN": "t0k"})
    assert dict(args) == {"service": "api", "namespace": "shop", "token": "t0k"}
    assert args.secret_names == frozenset({"token"})
    assert "t0k" not in repr(args)
    assert redact("GET /x?token=t0k", args) == "GET /x?token=******"


def test_resolve_args_errors() -> None:
    with pytest.raises(ArgumentError, match="argument 'namespace' has no value: give it"):
        resolve_args([Argument(name="namespace")], {}, env={})
    with pytest.raises(ArgumentError, match="names an unset field"):
        resolve_args([Argument(name="rev")], {"rev": None}, env={})
    with pytest.raises(ArgumentError, match="API_TOKEN, which is not set"):
        resolve_args([Argument(name="t", value_from=SecretSource(from_env="API_TOKEN"))], env={})
    ref = Argument(name="t", value_from=SecretSource(secret_key_ref=SecretKeyRef(name="prom", key="token")))
    with pytest.raises(ArgumentError, match="Secret 'prom' key 'token', but no Secrets can be read here"):
        resolve_args([ref], env={})

    class Secrets:
        def read(self, r: SecretKeyRef) -> str:
            return f"{r.name}/{r.key}"

    assert resolve_args([ref], env={}, secrets=Secrets())["t"] == "prom/token"


def test_substitute() -> None:
    assert substitute("rate(x{svc='{{args.svc}}', ns='{{ args.ns }}'}[1m])", {"svc": "a", "ns": "b"}, where="q") == (
        "rate(x{svc='a', ns='b'}[1m])"
    )
    with pytest.raises(ArgumentError) as err:
        substitute("{{args.svc}}-{{args.rev}}", {"svc": "a"}, where="metric 'm' query")
    assert str(err.value) == "metric 'm' query uses {{args.rev}}, but no argument 'rev' was given (given: svc)"


# --- JSON paths ----------------------------------------------------------------------------------

DOC = {"data": {"ok": True, "a-b": 1, "list": [1, 2, 3]}, "items": [{"value": 3}, {"value": 7}]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.data.ok", True),
        ("$.data.a-b", 1),
        ("$['data']['list'][-1]", 3),
        ('$["items"][0].value', 3),
        ("$.items[*].value", [3, 7]),
        ("$.data.*", [True, 1, [1, 2, 3]]),
        ("$.nothing[*]", []),
    ],
)
def test_json_path(path: str, expected: Any) -> None:
    assert parse(path).select(DOC) == expected


def test_json_path_errors() -> None:
    with pytest.raises(NoMatch, match=r"the document has no \$.items\[5\]"):
        parse("$.items[5].value").select(DOC)
    with pytest.raises(JsonPathError, match="must start with"):
        parse("data.ok")
    with pytest.raises(JsonPathError, match="unexpected '\\?' at character 7"):
        parse("$.data?")
