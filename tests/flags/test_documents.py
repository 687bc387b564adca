"""FlagSet -> flagd document -> ConfigMap, checked by the parsers that will read them: Kubernetes'
schema for the ConfigMap, the flagd provider's own parser and evaluator for the document; and bad
documents refused by lint with file:line:column and the field path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes_validate
import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.exception import ParseError

from rollwise.flags import document
from rollwise.flags.configmap import configmap, mount
from rollwise.flags.env import env_of
from rollwise.flags.progressive import FlagRolloutSpec, decide, start
from rollwise.platforms.local.daemon import flags_files
from rollwise.spec.flags import FlagSet
from rollwise.spec.loader import load_file
from rollwise.spec.rollout import Rollout
from tests.flags.sdk import USERS, Evaluator
from tests.procs import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "feature-flags.yaml"
K8S_VERSION = "1.30"


def example() -> tuple[FlagSet, Rollout]:
    loaded, _ = load_file(EXAMPLE)
    fs = next(i.resource for i in loaded if isinstance(i.resource, FlagSet))
    ro = next(i.resource for i in loaded if isinstance(i.resource, Rollout))
    return fs, ro


def test_configmap_holds_the_exact_document_and_passes_kubernetes_validation() -> None:
    fs, _ = example()
    cm = configmap(fs, namespace="shop")
    kubernetes_validate.validate(cm, K8S_VERSION, strict=True)
    assert cm["metadata"]["name"] == "demo-flags-flags"
    assert list(cm["data"]) == ["flags.json"]
    # The exact text: the document the FlagSet renders, nothing added, nothing lost.
    assert json.loads(cm["data"]["flags.json"]) == fs.flagd_document()
    assert cm["data"]["flags.json"] == document.dumps(fs.flagd_document())


def test_the_flagd_provider_parser_accepts_the_document_and_evaluates_it(tmp_path: Path) -> None:
    fs, _ = example()
    text = configmap(fs)["data"]["flags.json"]
    core = FlagdCore()
    changed = core.set_flags_and_get_changed_keys(text)
    assert sorted(changed) == sorted(fs.spec.flags)
    # Through the SDK as an app reads the mounted file.
    path = tmp_path / "flags.json"
    path.write_text(text)
    with Evaluator(path) as ev:
        assert ev.boolean("new-greeting", "ann") is False
        assert ev.boolean("staff-tools", "ann") is False
        colours = {ev.string("banner-color", u) for u in USERS[:200]}
        assert colours == {"#1f6feb", "#2da44e", "#fb8500"}


def test_the_provider_parser_refuses_what_lint_refuses_too() -> None:
    # A state flagd does not know: the parser's error, which lint reports first with its position.
    with pytest.raises(ParseError):
        FlagdCore().set_flags({"flags": {"f": {"state": "ON", "variants": {"a": 1}, "defaultVariant": "a"}}})


def test_pod_template_mounts_the_configmap_as_a_directory() -> None:
    _, ro = example()
    assert ro.spec.feature_flags is not None
    pod = {"containers": [{"name": "app", "image": "shop:1.0"}]}
    spec = mount(pod, ro.spec.feature_flags)
    container = spec["containers"][0]
    # No subPath: the kubelet updates a mounted ConfigMap directory in place, never a subPath.
    mounted = {"name": "rollwise-flags", "mountPath": "/etc/rollwise/flags", "readOnly": True}
    assert container["volumeMounts"] == [mounted]
    assert {"name": "FLAGD_OFFLINE_FLAG_SOURCE_PATH", "value": "/etc/rollwise/flags/flags.json"} in container["env"]
    assert spec["volumes"] == [{"name": "rollwise-flags", "configMap": {"name": "demo-flags-flags"}}]
    deployment_like = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    kubernetes_validate.validate(deployment_like, K8S_VERSION, strict=True)


def test_env_values_are_the_default_variants() -> None:
    fs, _ = example()
    assert env_of(fs) == {"BANNER_COLOR": "#1f6feb"}


BROKEN = {
    "default_not_variant": [
        "11:7 spec.flags.new-checkout.defaultVariant: 'enabled' is not one of the variants (on, off)",
    ],
    "weights_not_100": [
        "13:9 spec.flags.button-colour.targeting.fractional: weights must add up to 100 (got 90)",
    ],
    "bad_targeting": [
        "14:13 spec.flags.staff-only.targeting.if[0].endswith: unknown operator 'endswith'; did you mean 'ends_with'?",
        "24:7 spec.flags.two-keys.targeting: a rule must be one operator applied to its arguments (got keys in, if)",
        "33:9 spec.flags.shared-rule.targeting.$ref: no evaluator named 'is-staf' in $evaluators (is-staff)",
    ],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_bad_flag_documents_are_lint_errors_with_position(name: str) -> None:
    rel = f"tests/flags/broken/{name}.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "rollwise.cli", "lint", rel],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert lines[:-1] == [f"{rel}:{line}" for line in BROKEN[name]]


def test_percentages_only_add_users_as_they_grow(tmp_path: Path) -> None:
    """The on-variant comes first, so a user in at 10% stays in at 20%, 30%..."""
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    before: set[str] = set()
    for percent in (10, 20, 30, 40, 50):
        doc = {"flags": {"f": document.set_percent(flag, percent, "on", "off")}}
        with Evaluator.of(doc, tmp_path / f"p{percent}.json") as ev:
            on = {u for u in USERS if ev.boolean("f", u)}
        assert before <= on
        assert abs(len(on) / len(USERS) * 100 - percent) <= 3
        before = on


def test_enable_disable_and_set_on_a_boolean_flag() -> None:
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    assert document.enable(flag)["defaultVariant"] == "on"
    assert document.disable(flag)["state"] == "DISABLED"
    split = document.set_percent(flag, 30, "on", "off")
    assert document.percent_of(split) == 30
    assert "targeting" not in document.enable(split)
    with pytest.raises(document.FlagChangeError, match="'maybe' is not one of the variants"):
        document.set_variant(flag, "maybe")


def test_progressive_steps_follow_the_canary_step_replay_and_a_failure_reverts() -> None:
    spec = FlagRolloutSpec(percent=50, step=20, interval="10s")
    steps = spec.steps()
    assert [s.kind for s in steps] == ["setWeight", "pause"] * 3
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    state = start(t0, 0)
    seen = []
    for second in range(0, 40):
        d = decide(steps, state, t0 + timedelta(seconds=second), None)
        state = d.state
        seen.append(state.percent)
    assert seen[0] == 20 and seen[10] == 40 and seen[20] == 50
    assert state.phase == "Completed"
    failing = decide(steps, start(t0, 0), t0, "Failed")
    assert failing.revert and failing.state.phase == "Reverted"


def test_an_atomic_rewrite_is_picked_up_by_the_provider(tmp_path: Path) -> None:
    """The file is replaced by rename, never written in place; the provider polls its modification
    time, which every write moves forward even within one clock tick."""
    path = tmp_path / "flags.json"
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    flags_files.write(path, json.dumps({"flags": {"f": flag}}))
    with Evaluator(path) as ev:
        assert ev.boolean("f", "u") is False
        for n in range(4):
            want = n % 2 == 0
            before = path.stat().st_mtime_ns
            flags_files.write(path, json.dumps({"flags": {"f": {**flag, "defaultVariant": "on" if want else "off"}}}))
            assert path.stat().st_mtime_ns > before
            wait_for(lambda w=want: ev.boolean("f", "u", default=not w) is w or None, timeout=30, what="reload")
