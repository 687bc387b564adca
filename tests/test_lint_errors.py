"""The broken-spec suite: every file in tests/broken is wrong in one deliberate way (a few in several),
and lint must name the exact file:line:column, the field path and a message that says what was
expected and what was found. Nothing may end in a traceback.

Positions are 1-based and were worked out by hand from the YAML: a mapping entry is located where its
key begins, a list item where the item begins, a missing field at the object that should hold it, and
in a multi-document file lines count from the start of the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollwise.lint import lint_paths
from rollwise.spec.rollout import Rollout

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "tests/broken"  # relative, as a user would type it; tests run from ROOT

# Each case: the file tests/broken/<name>.yaml and every line lint reports for it, without the
# leading "tests/broken/<name>.yaml:" (added by the test, which compares whole lines).
CASES: dict[str, list[str]] = {
    "abtest_candidate_no_traffic": [
        (
            "16:11 spec.strategy.abTest.variants[1]: the candidate needs match rules, a weight, or "
            "both, or it would receive no traffic"
        ),
    ],
    "abtest_control_match_nginx": [
        (
            "28:11 spec.strategy.abTest.variants[0].match: the nginx router cannot send matched requests to "
            "the control (it sends them to the canary Service only); the control already receives every "
            "request the candidate's rules do not take: remove this match; routers that can: istio, "
            "gatewayAPI, local"
        ),
    ],
    "abtest_control_weight": [
        (
            "16:11 spec.strategy.abTest.variants[0].weight: the control receives every user not sent to "
            "the candidate; set weight on the candidate only"
        ),
    ],
    "abtest_no_candidate": [
        (
            "13:7 spec.strategy.abTest.variants: needs one variant with role control and one with role "
            "candidate (got control, control)"
        ),
    ],
    "abtest_weight_istio": [
        (
            "31:11 spec.strategy.abTest.variants[1].weight: the istio router cannot keep a share of "
            "users on one variant (it splits per request); use match rules, or a router that can: local"
        ),
    ],
    "bad_duration": [
        (
            "13:13 spec.strategy.canary.steps[1].pause.duration: must be a duration like '30s', '5m' or "
            "'1h' (got '5 minutes')"
        ),
    ],
    "bad_int_or_percent": [
        "10:7 spec.strategy.rollingUpdate.maxSurge: must be an integer or a percentage like '25%' (got '25 %')",
    ],
    "abort_scale_down_delay_zero": [
        (
            "11:7 spec.strategy.blueGreen.abortScaleDownDelaySeconds: warning: 0 keeps an aborted revision's "
            "replicas up until retry, undo or a new spec (as in Argo Rollouts); leave it unset to scale them "
            "down at once"
        ),
    ],
    "bad_tag": [
        "6:3 spec.replicas: invalid YAML: 'three' is not a valid int (as its tag !!int requires)",
    ],
    "bluegreen_autopromotion": [
        (
            "13:7 spec.strategy.blueGreen.autoPromotionSeconds: has no effect with "
            "autoPromotionEnabled: false; remove one of the two"
        ),
    ],
    "bluegreen_no_active_service": [
        (
            "18:5 spec.strategy.blueGreen.activeService: required on Kubernetes: the Service whose selector "
            "is switched on promotion"
        ),
    ],
    "bluegreen_same_services": [
        "11:7 spec.strategy.blueGreen.previewService: must differ from activeService (both are 'web')",
    ],
    "bool_for_int": [
        "6:3 spec.replicas: must be an integer (got true)",
    ],
    "canary_no_steps": [
        (
            "10:5 spec.strategy.canary.steps: warning: no steps and no dynamic weighting: once ready, the "
            "new revision takes all traffic at once"
        ),
    ],
    "canary_zero_surge": [
        (
            "12:7 spec.strategy.canary.maxSurge: maxSurge and maxUnavailable cannot both be 0: nothing could "
            "ever be replaced (got maxSurge 0, maxUnavailable 0 by default)"
        ),
    ],
    "cel_syntax_error": [
        (
            "8:7 spec.metrics[0].successCondition: invalid CEL expression 'result >= 0.95 &&': the "
            "expression ends too early; expected a value (a name, a literal or a parenthesised "
            "expression)"
        ),
    ],
    "comments_only": [],
    "compare_ignore_without_body": [
        "16:9 spec.strategy.shadow.compare.ignoreBodyPaths: warning: has no effect with body: false",
    ],
    "compare_on_istio": [
        (
            "26:7 spec.strategy.shadow.compare: the istio router cannot compare mirrored responses (its "
            "proxy discards them); routers that can: local; judge the shadow with analysis instead"
        ),
    ],
    "count_without_interval": [
        "7:7 spec.metrics[0].interval: required when count is more than 1 (count is 3)",
    ],
    "decreasing_weights": [
        (
            "14:11 spec.strategy.canary.steps[3].setWeight: weight goes down from 50 (step 1) to 30; "
            "set allowDecreasingWeights: true if that is intended"
        ),
    ],
    "digest_policy_no_digest": [
        (
            "16:11 spec.template.spec.containers[0].image: image 'nginx:1.27.3' must be pinned by "
            "digest (name@sha256:...) under immutable.images: digest"
        ),
    ],
    "duplicate_key": [
        "9:3 spec.replicas: duplicate key (first at line 6); one of the two values would be lost",
    ],
    "dynamic_no_routing": [
        (
            "10:7 spec.strategy.canary.dynamic: needs trafficRouting, which is not set (dynamic weighting "
            "moves traffic, not replicas); routers that can: istio, gatewayAPI, nginx, local"
        ),
    ],
    "empty": [],
    "enum_out_of_range": [
        "11:9 spec.strategy.canary.abort.mode: must be one of 'instant', 'gradual' or 'freeze' (got 'sudden')",
    ],
    "flag_default_not_variant": [
        "11:7 spec.flags.new-checkout.defaultVariant: 'enabled' is not one of the variants (on, off)",
    ],
    "flag_fractional_sum": [
        "14:9 spec.flags.button-colour.targeting.fractional: weights must add up to 100 (got 90)",
    ],
    "flag_mixed_types": [
        "8:7 spec.flags.max-items.variants: all variants must have the same type (got number: small; string: large)",
    ],
    "flagset_not_linted": [
        (
            "10:5 spec.featureFlags.flagSet: warning: FlagSet 'web-flags' is not among the linted files; it "
            "must exist where the rollout runs"
        ),
    ],
    "gateway_missing_services": [
        (
            "18:5 spec.strategy.canary.canaryService: required: the gatewayAPI router routes to "
            "revisions through Services"
        ),
        (
            "18:5 spec.strategy.canary.stableService: required: the gatewayAPI router routes to "
            "revisions through Services"
        ),
    ],
    "header_prefix_gateway": [
        (
            "30:21 spec.strategy.canary.steps[0].setHeaderRoute.match[0].headers[0].prefix: the "
            "gatewayAPI router cannot match headers by prefix (only by exact value or regular "
            "expression); routers that can: istio, local"
        ),
    ],
    "header_route_no_routing": [
        (
            "11:11 spec.strategy.canary.steps[0].setHeaderRoute: needs trafficRouting, which is not set "
            "(without a router, traffic follows replica counts); routers that can: istio, gatewayAPI, "
            "nginx, local"
        ),
    ],
    "image_latest": [
        (
            "17:11 spec.template.spec.containers[0].image: image 'nginx:latest' uses the mutable tag "
            "'latest'; pin a version or a digest"
        ),
    ],
    "image_without_tag": [
        (
            "14:11 spec.template.spec.containers[0].image: image 'registry.local:5000/team/web' has no "
            "tag; pin a version (name:1.2.3) or a digest (name@sha256:...)"
        ),
    ],
    "invalid_regex": [
        (
            "18:21 spec.strategy.canary.steps[0].setHeaderRoute.match[0].headers[0].regex: invalid "
            "regular expression 'beta-(.*': missing ), unterminated subpattern at position 5"
        ),
    ],
    "invalid_yaml": [
        (
            "8:11 <document>: invalid YAML: while parsing a list in brackets that starts at line 7, "
            "column 14: expected ',' or ']', but got ':'"
        ),
    ],
    "invalid_yaml_indent": [
        (
            "5:2 <document>: invalid YAML: found a mapping entry where the mapping that starts at line "
            "1, column 1 should have ended; check the indentation"
        ),
    ],
    "kind_wrong_case": [
        "2:1 kind: unknown kind 'rollout'; did you mean 'Rollout'?",
    ],
    "list_for_mapping": [
        "9:5 spec.strategy.canary: must be a mapping (got a list)",
    ],
    "metric_no_condition": [
        (
            "7:7 spec.metrics[0]: set successCondition or failureCondition: a prometheus measurement "
            "has no verdict of its own"
        ),
    ],
    "mirror_on_nginx": [
        (
            "25:11 spec.strategy.canary.steps[0].setMirrorRoute: the nginx router cannot mirror "
            "traffic; routers that can: istio, gatewayAPI, local"
        ),
    ],
    "missing_api_version": [
        "1:1 apiVersion: required: a string such as rollwise.dev/v1alpha1",
    ],
    "missing_kind": [
        "1:1 kind: required: one of Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, FlagSet",
    ],
    "missing_required_field": [
        "7:7 spec.metrics[0].provider: required field is missing",
    ],
    "missing_strategy": [
        "5:1 spec.strategy: required field is missing",
    ],
    "missing_template_arg": [
        (
            "27:11 spec.strategy.canary.steps[1].analysis.args: template 'errors' needs argument "
            "'service', which is not given"
        ),
    ],
    "misspelled_field": [
        "10:7 spec.strategy.canary.stableServce: unknown field; did you mean 'stableService'?",
    ],
    "misspelled_step": [
        "11:11 spec.strategy.canary.steps[0].setWieght: unknown field; did you mean 'setWeight'?",
    ],
    "multi_document": [
        "34:11 spec.strategy.canary.steps[2].setWeight: must be between 0 and 100 (got 140)",
    ],
    "negative_duration": [
        "10:7 spec.strategy.shadow.duration: must not be negative (got -30)",
    ],
    "nginx_two_header_routes": [
        (
            "31:13 spec.strategy.canary.steps[1].setHeaderRoute.name: the nginx router holds one header "
            "route at a time (its canary Ingress has one header); remove 'beta' first (a setHeaderRoute "
            "with only its name removes a route)"
        ),
    ],
    "no_strategy": [
        "8:3 spec.strategy: set exactly one of recreate, rollingUpdate, blueGreen, canary, shadow, abTest (got none)",
    ],
    "no_workload": [
        "5:1 spec: set exactly one of template, process, workloadRef (got none)",
    ],
    "non_mapping_document": [
        "1:1 <document>: a document must be a mapping with apiVersion and kind (got a list)",
    ],
    "non_string_key": [
        (
            "10:9 spec.flags.new-checkout.variants.true: a key must be a string (got true; unquoted on, "
            "off, yes and no are booleans in YAML); put it in quotes"
        ),
        (
            "11:9 spec.flags.new-checkout.variants.false: a key must be a string (got false; unquoted "
            "on, off, yes and no are booleans in YAML); put it in quotes"
        ),
    ],
    "percent_over_100": [
        "10:7 spec.strategy.rollingUpdate.maxUnavailable: must be a percentage between 0% and 100% (got '150%')",
    ],
    "pod_template_unknown_field": [
        (
            "17:11 spec.template.spec.containers[0].livenesProbe: unknown field in the Kubernetes pod "
            "template; did you mean 'livenessProbe'? (Kubernetes 1.31 schema)"
        ),
    ],
    "query_match_nginx": [
        (
            "28:17 spec.strategy.canary.steps[0].setHeaderRoute.match[0].queryParams: the nginx router "
            "cannot match query parameters at all; routers that can: istio, gatewayAPI, local"
        ),
    ],
    "regex_lookahead_istio": [
        (
            "32:21 spec.strategy.canary.steps[0].setHeaderRoute.match[0].headers[0].regex: the istio "
            "router matches with RE2, which rejects '^(?!internal-).*': invalid perl operator '(?!' (RE2 "
            "has no lookahead or lookbehind)"
        ),
    ],
    "rolling_zero_rounded": [
        (
            "13:7 spec.strategy.rollingUpdate.maxUnavailable: maxSurge and maxUnavailable cannot both "
            "be 0: nothing could ever be replaced (got maxSurge 0, maxUnavailable 20% of 4 replicas, "
            "rounded down: 0)"
        ),
    ],
    "rolling_zero_zero": [
        (
            "12:7 spec.strategy.rollingUpdate.maxUnavailable: maxSurge and maxUnavailable cannot both "
            "be 0: nothing could ever be replaced (got maxSurge 0, maxUnavailable 0)"
        ),
    ],
    "router_istio_for_process": [
        (
            "11:9 spec.strategy.canary.trafficRouting.istio: a process rollout runs on the local platform, "
            "where the only router is local (got istio)"
        ),
    ],
    "router_local_for_template": [
        (
            "20:9 spec.strategy.canary.trafficRouting.local: the local router serves process rollouts "
            "only; a rollout with a pod template runs on Kubernetes, where the routers are istio, "
            "gatewayAPI, nginx"
        ),
    ],
    "scale_down_delay_hours": [
        (
            "10:7 spec.strategy.abTest.scaleDownDelaySeconds: warning: 7200 s keeps the old revision's "
            "replicas running for over an hour; the delay is in seconds (minutes or hours as seconds?)"
        ),
    ],
    "scale_down_delay_negative": [
        "12:7 spec.strategy.canary.scaleDownDelaySeconds: must be 0 or more (got -5)",
    ],
    "scale_down_delay_without_router": [
        (
            "11:7 spec.strategy.canary.scaleDownDelaySeconds: warning: has no effect without trafficRouting: "
            "the stable revision shrinks as the canary grows, so nothing is left to scale down after promotion"
        ),
    ],
    "same_services": [
        "20:7 spec.strategy.canary.canaryService: must differ from stableService (both are 'web')",
    ],
    "scalar_document": [
        "2:1 <document>: a document must be a mapping with apiVersion and kind (got 'rollout')",
    ],
    "selector_mismatch": [
        (
            "12:9 spec.template.metadata.labels.app: must be 'web' to match "
            "spec.selector.matchLabels.app (got 'website')"
        ),
    ],
    "several_problems": [
        (
            "5:3 metadata.name: must be a lowercase DNS name: a-z, 0-9 and '-', starting and ending "
            "alphanumeric (got 'Web_App')"
        ),
        "7:3 spec.replicas: must be 0 or more (got -1)",
        "9:5 spec.process.command: must have at least 1 item (got 0)",
        "12:7 spec.strategy.canary.maxSurge: must be an integer or a percentage like '25%' (got '30 percent')",
        "15:19 spec.strategy.canary.steps[1].pause.duraton: unknown field; did you mean 'duration'?",
        "16:11 spec.strategy.canary.steps[2].setWeight: must be between 0 and 100 (got 101)",
    ],
    "shadow_on_nginx": [
        (
            "22:7 spec.strategy.shadow.trafficRouting: the nginx router cannot mirror traffic; routers "
            "that can: istio, gatewayAPI, local"
        ),
    ],
    "step_no_keys": [
        (
            "12:11 spec.strategy.canary.steps[1]: set exactly one of setWeight, pause, analysis, "
            "setCanaryScale, setHeaderRoute, setMirrorRoute (got none)"
        ),
    ],
    "step_null_set_weight": [
        (
            "14:11 spec.strategy.canary.steps[2]: set exactly one of setWeight, pause, analysis, "
            "setCanaryScale, setHeaderRoute, setMirrorRoute (got none: setWeight is empty, which counts "
            "as not set; give it a value)"
        ),
    ],
    "step_two_keys": [
        (
            "11:11 spec.strategy.canary.steps[0]: set only one of setWeight, pause, analysis, "
            "setCanaryScale, setHeaderRoute, setMirrorRoute (got setWeight, pause)"
        ),
    ],
    "steps_and_dynamic": [
        "14:7 spec.strategy.canary.dynamic: use either steps or dynamic weighting, not both",
    ],
    "string_for_int": [
        "6:3 spec.replicas: must be an integer (got '3')",
    ],
    "tab_indent": [
        "4:1 <document>: invalid YAML: found a tab character; YAML indentation must use spaces",
    ],
    "template_defined_twice": [
        (
            "17:3 metadata.name: AnalysisTemplate 'p99-latency' is also defined at "
            "tests/broken/template_defined_twice.yaml:1 with different content; one would replace the other"
        ),
    ],
    "template_not_linted": [
        (
            "15:17 spec.strategy.canary.steps[1].analysis.templates[0].templateName: warning: "
            "AnalysisTemplate 'checkout-latency' is not among the linted files; it must exist where the "
            "rollout runs"
        ),
    ],
    "two_strategies": [
        (
            "8:3 spec.strategy: set only one of recreate, rollingUpdate, blueGreen, canary, shadow, "
            "abTest (got blueGreen, canary)"
        ),
    ],
    "two_workloads": [
        "5:1 spec: set only one of template, process, workloadRef (got process, workloadRef)",
    ],
    "undeclared_arg": [
        (
            "14:11 spec.metrics[0].provider.prometheus.query: uses {{args.namespace}}, but the template "
            "declares no argument 'namespace' (declared: service)"
        ),
    ],
    "unknown_field_no_hint": [
        (
            "11:7 spec.strategy.blueGreen.colour: unknown field; expected one of: activeService, "
            "previewService, previewReplicaCount, autoPromotionEnabled, autoPromotionSeconds, "
            "scaleDownDelaySeconds, abortScaleDownDelaySeconds, prePromotionAnalysis, postPromotionAnalysis"
        ),
    ],
    "unknown_kind": [
        (
            "2:1 kind: unknown kind 'Canary'; expected one of: Rollout, AnalysisTemplate, "
            "ClusterAnalysisTemplate, AnalysisRun, FlagSet"
        ),
    ],
    "unknown_template_arg": [
        (
            "32:17 spec.strategy.canary.steps[1].analysis.args[0].name: no referenced template declares "
            "an argument 'servce'; did you mean 'service'?"
        ),
    ],
    "weight_out_of_range": [
        "13:11 spec.strategy.canary.steps[2].setWeight: must be between 0 and 100 (got 140)",
    ],
    "winner_metric_unknown": [
        (
            "33:9 spec.strategy.abTest.winnerBy.metric: 'conversion' is neither a builtin metric "
            "(success-rate, error-rate, request-count, latency-p50, latency-p90, latency-p95, latency-p99, "
            "latency-mean) nor a metric of the referenced analysis templates (conversion-rate); did you "
            "mean 'conversion-rate'?"
        ),
    ],
    "wrong_api_version": [
        "1:1 apiVersion: unsupported version 'rollwise.dev/v1'; expected rollwise.dev/v1alpha1",
    ],
}


def expected_lines(name: str) -> list[str]:
    return [f"{BROKEN}/{name}.yaml:{line}" for line in CASES[name]]


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


def test_every_broken_file_has_a_case() -> None:
    files = {p.stem for p in (ROOT / BROKEN).glob("*.yaml")}
    assert files == set(CASES)
    assert len(files) >= 35


@pytest.mark.parametrize("name", sorted(CASES))
def test_lint_reports_exact_lines(name: str, at_root: Path) -> None:
    result = lint_paths([f"{BROKEN}/{name}.yaml"])
    assert [str(p) for p in result.problems] == expected_lines(name)
    assert all(p.line >= 1 and p.column >= 1 for p in result.problems)
    # Nothing is half-loaded: a file with any error found while loading yields no resource.
    if any(p.path == "<document>" for p in result.problems):
        assert result.loaded == []


def test_empty_file_is_clean(at_root: Path) -> None:
    result = lint_paths([f"{BROKEN}/empty.yaml", f"{BROKEN}/comments_only.yaml"])
    assert result.problems == []
    assert result.loaded == []


def test_positions_in_later_documents_count_from_the_file_start(at_root: Path) -> None:
    for name, written in (("multi_document", "setWeight: 140"), ("missing_template_arg", "analysis:")):
        text = (ROOT / BROKEN / f"{name}.yaml").read_text().splitlines()
        (problem,) = lint_paths([f"{BROKEN}/{name}.yaml"]).problems
        assert problem.line > text.index("---") + 1  # below the first document
        assert text[problem.line - 1][problem.column - 1 :] == written


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00binary", ["odd.yaml:0:0 <file>: not UTF-8 text (invalid start byte)"]),
        (
            b"\xef\xbb\xbfapiVersion: rollwise.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: Web\n",
            [
                "odd.yaml:1:1 spec: required field is missing",
                "odd.yaml:4:3 metadata.name: must be a lowercase DNS name: a-z, 0-9 and '-', starting and "
                "ending alphanumeric (got 'Web')",
            ],
        ),
        (b"a: &a [*a]\n", ["odd.yaml:1:1 apiVersion: required: a string such as rollwise.dev/v1alpha1"]),
        (
            b"apiVersion: !!python/object:os.system x\n",
            ["odd.yaml:1:13 <document>: invalid YAML: unsupported tag 'tag:yaml.org,2002:python/object:os.system'"],
        ),
        (
            b'kind: "Rollout\n',
            [
                "odd.yaml:2:1 <document>: invalid YAML: while scanning a quoted string that starts at line 1, "
                "column 7: found the end of the file"
            ],
        ),
    ],
    ids=["not-utf8", "bom", "recursive-alias", "python-tag", "unclosed-quote"],
)
def test_odd_input_is_a_problem_not_a_crash(
    content: bytes, expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("odd.yaml").write_bytes(content)
    assert [str(p) for p in lint_paths(["odd.yaml"]).problems] == expected


def test_bare_pause_is_an_indefinite_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `- pause:` is null in YAML; unlike `- setWeight:` (step_null_set_weight) it means `pause: {}`,
    # a pause until a human promotes.
    monkeypatch.chdir(tmp_path)
    text = (ROOT / BROKEN / "step_null_set_weight.yaml").read_text()
    assert text.endswith("        - pause:\n        - setWeight:\n")
    Path("bare_pause.yaml").write_text(text.removesuffix("        - setWeight:\n"))
    result = lint_paths(["bare_pause.yaml"])
    assert result.problems == []
    (loaded,) = result.loaded
    assert isinstance(loaded.resource, Rollout)
    canary = loaded.resource.spec.strategy.canary
    assert canary is not None and canary.steps is not None
    (weight, pause) = canary.steps
    assert weight.set_weight == 20
    assert pause.kind == "pause"
    assert pause.pause is not None
    assert pause.pause.duration is None


def test_missing_file(at_root: Path) -> None:
    assert [str(p) for p in lint_paths([f"{BROKEN}/no-such-file.yaml"]).problems] == [
        f"{BROKEN}/no-such-file.yaml:0:0 <file>: no such file"
    ]


# --- the real command line -------------------------------------------------------------------------


def rollwise(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "rollwise"
    assert exe.exists(), f"the rollwise script is not installed beside {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k != "ROLLWISE_DEBUG"}
    env["COLUMNS"] = "200"  # keep usage errors on one line whatever the terminal
    done = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert "Traceback" not in done.stdout
    assert "Traceback" not in done.stderr
    return done


def test_cli_reports_every_broken_file_exactly() -> None:
    done = rollwise("lint", BROKEN)
    assert done.returncode == 1
    problems = [line for name in sorted(CASES) for line in expected_lines(name)]
    errors = [line for line in problems if ": warning: " not in line]
    warnings = [line for line in problems if ": warning: " in line]
    # Errors go to stderr (with the summary, since there are errors), warnings to stdout.
    assert done.stderr.splitlines()[:-1] == errors
    assert done.stdout.splitlines() == warnings
    loaded = len(lint_paths([ROOT / BROKEN]).loaded)
    assert done.stderr.splitlines()[-1] == (
        f"{loaded} resources checked, {len(errors)} errors, {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    )


@pytest.mark.parametrize(
    "name",
    ["weight_out_of_range", "invalid_yaml", "multi_document", "pod_template_unknown_field", "cel_syntax_error"],
)
def test_cli_exit_1_on_errors(name: str) -> None:
    done = rollwise("lint", f"{BROKEN}/{name}.yaml")
    assert done.returncode == 1
    assert done.stderr.splitlines()[:-1] == expected_lines(name)
    assert done.stdout == ""


def test_cli_exit_0_when_clean() -> None:
    done = rollwise("lint", f"{BROKEN}/empty.yaml")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["0 resources checked, 0 errors, 0 warnings"]
    assert done.stderr == ""


def test_cli_exit_0_with_warnings_only() -> None:
    done = rollwise("lint", f"{BROKEN}/template_not_linted.yaml", f"{BROKEN}/comments_only.yaml")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        *expected_lines("template_not_linted"),
        "1 resource checked, 0 errors, 1 warning",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "canary_no_steps",
        "compare_ignore_without_body",
        "flagset_not_linted",
        "abort_scale_down_delay_zero",
        "scale_down_delay_hours",
        "scale_down_delay_without_router",
    ],
)
def test_cli_exit_0_on_each_warning_only_file(name: str) -> None:
    done = rollwise("lint", f"{BROKEN}/{name}.yaml")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [*expected_lines(name), "1 resource checked, 0 errors, 1 warning"]
    assert done.stderr == ""


def test_cli_exit_1_on_missing_file() -> None:
    done = rollwise("lint", f"{BROKEN}/no-such-file.yaml")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"{BROKEN}/no-such-file.yaml:0:0 <file>: no such file"


@pytest.mark.parametrize(
    "args",
    [
        ["lint"],
        ["lint", "-o", "yaml", f"{BROKEN}/empty.yaml"],
        ["lint", "--no-such-option", f"{BROKEN}/empty.yaml"],
        ["lint", "docs-that-are-not-yaml"],
    ],
    ids=["no-files", "bad-output", "unknown-option", "folder-without-yaml"],
)
def test_cli_exit_2_on_usage_errors(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "docs-that-are-not-yaml").mkdir()
    (tmp_path / "docs-that-are-not-yaml" / "notes.txt").write_text("not yaml\n")
    (tmp_path / BROKEN).mkdir(parents=True)
    (tmp_path / BROKEN / "empty.yaml").write_text("")
    done = rollwise(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Usage:" in done.stderr


def test_cli_json_output() -> None:
    done = rollwise("lint", "-o", "json", BROKEN)
    assert done.returncode == 1
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert isinstance(report, list)
    assert {tuple(sorted(item)) for item in report} == {("column", "file", "line", "message", "path", "severity")}
    as_text = [
        f"{i['file']}:{i['line']}:{i['column']} {i['path']}: "
        f"{'warning: ' if i['severity'] == 'warning' else ''}{i['message']}"
        for i in report
    ]
    assert as_text == [line for name in sorted(CASES) for line in expected_lines(name)]
    weight = next(i for i in report if i["file"] == f"{BROKEN}/weight_out_of_range.yaml")
    assert weight == {
        "file": f"{BROKEN}/weight_out_of_range.yaml",
        "line": 13,
        "column": 11,
        "path": "spec.strategy.canary.steps[2].setWeight",
        "message": "must be between 0 and 100 (got 140)",
        "severity": "error",
    }
