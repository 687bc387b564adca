"""Revisions: content-hash names, referenced config, history and undo."""

from __future__ import annotations

from rollwise.engine import Command, referenced_config, revision_name
from rollwise.spec.rollout import Rollout
from tests.engine.harness import LOCAL, deployed, phase_is, rollout


def test_revision_is_named_by_workload_and_config_content() -> None:
    a = rollout({"recreate": {}}, version=1).spec
    same = rollout({"rollingUpdate": {}}, version=1, replicas=9).spec
    other = rollout({"recreate": {}}, version=2).spec
    assert revision_name(a, {}) == revision_name(same, {})  # replicas and strategy are not content
    assert revision_name(a, {}) != revision_name(other, {})
    assert revision_name(a, {"ConfigMap/app": "h1"}) != revision_name(a, {"ConfigMap/app": "h2"})
    assert len(revision_name(a, {})) == 10 and revision_name(a, {}).isalnum()


def test_referenced_config_is_found_in_the_pod_template() -> None:
    ro = Rollout.model_validate(
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "app",
                                "image": "web:1.0",
                                "envFrom": [{"configMapRef": {"name": "env"}}],
                                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "k"}}}],
                            }
                        ],
                        "volumes": [
                            {"name": "c", "configMap": {"name": "files"}},
                            {"name": "s", "secret": {"secretName": "tls"}},
                            {"name": "p", "projected": {"sources": [{"configMap": {"name": "more"}}]}},
                        ],
                    },
                },
                "strategy": {"recreate": {}},
            },
        }
    )
    assert referenced_config(ro.spec) == {
        "ConfigMap/env",
        "Secret/keys",
        "ConfigMap/files",
        "Secret/tls",
        "ConfigMap/more",
    }


def test_a_config_change_is_a_new_revision() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=2)
    first = p.status.stable_revision
    p.config_hashes["ConfigMap/app"] = "v2"
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision != first


def test_history_keeps_revision_history_limit_old_revisions() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=1, revisionHistoryLimit=2)
    for version in range(2, 7):
        p.update(version=version)
        p.run(60, until=phase_is("Healthy"))
    p.run(10)  # the last old replica finishes draining: a revision with replicas is never dropped
    history = p.status.history or []
    assert [r.number for r in history] == [4, 5, 6]
    assert p.status.stable_revision == history[-1].revision
    assert set(p.plan.retained_revisions) == {r.revision for r in history}


def test_undo_to_a_revision_number_renumbers_it() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=1)
    first = p.status.stable_revision
    for version in (2, 3):
        p.update(version=version)
        p.run(60, until=phase_is("Healthy"))
    plan = p.reconcile(Command("undo", to_revision=1))
    assert plan.status.current_revision == first
    assert plan.status.undo is not None and plan.status.undo.number == 4
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision == first
    assert [r.number for r in plan.status.history or []] == [2, 3, 4]


def test_unknown_revision_number_is_refused() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=1)
    plan = p.reconcile(Command("undo", to_revision=9))
    assert plan.status.last_command is not None and not plan.status.last_command.accepted
    assert "no revision 9" in plan.status.last_command.message


def test_editing_the_spec_after_an_undo_rolls_out_the_edit() -> None:
    p = deployed({"rollingUpdate": {}}, replicas=1)
    first = p.status.stable_revision
    p.update(version=2)
    p.run(60, until=phase_is("Healthy"))
    p.reconcile(Command("undo"))
    p.run(60, until=phase_is("Healthy"))
    assert p.status.stable_revision == first
    p.update(version=3)
    plan = p.run(60, until=phase_is("Healthy"))
    assert plan.status.stable_revision not in (first, None) and plan.status.undo is None


def test_undo_mid_update_goes_straight_back_to_stable() -> None:
    steps = [{"setWeight": 30}, {"pause": {}}]
    p = deployed({"canary": {"steps": steps, "trafficRouting": LOCAL}})
    stable = p.status.stable_revision
    p.update(version=2)
    p.run(30, until=phase_is("Paused"))
    plan = p.reconcile(Command("undo"))
    assert dict(plan.routes.weights) == {stable: 100} and plan.status.phase == "Healthy"
    assert plan.status.last_completion is not None and plan.status.last_completion.result == "fastTracked"
