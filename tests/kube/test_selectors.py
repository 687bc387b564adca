"""Label and field selector syntax and meaning, as apimachinery's parsers define them."""

from __future__ import annotations

import pytest

from rollwise.testing.kubeapi.errors import ApiError
from rollwise.testing.kubeapi.selectors import FieldSelector, LabelSelector, selector_to_string

SELECTOR_CASES = [
    ("a=b", {"x1", "x2", "x3"}),
    ("a==b", {"x1", "x2", "x3"}),
    ("a!=b", {"x4", "x5"}),  # != also matches objects without the key
    ("c!=d", {"x2", "x3", "x4", "x5"}),
    ("e in (x,y)", {"x1", "x2", "x4"}),
    ("e notin (x,y)", {"x3", "x5"}),
    ("!f", {"x1", "x2", "x4", "x5"}),
    ("f", {"x3"}),
    ("a=b,c!=d,e in (x,y),!f", {"x2"}),
    ("n>3", {"x4"}),
    ("n<3", {"x1"}),
    ("", {"x1", "x2", "x3", "x4", "x5"}),
]
LABELS = {
    "x1": {"a": "b", "c": "d", "e": "x", "n": "1"},
    "x2": {"a": "b", "e": "y"},
    "x3": {"a": "b", "e": "z", "f": "1", "n": "3"},
    "x4": {"a": "c", "e": "x", "n": "7"},
    "x5": {"n": "no"},
}


@pytest.mark.parametrize(("selector", "expected"), SELECTOR_CASES)
def test_label_selector_grammar_and_meaning(selector: str, expected: set[str]) -> None:
    parsed = LabelSelector.parse(selector)
    assert {name for name, labels in LABELS.items() if parsed.matches(labels)} == expected


@pytest.mark.parametrize("selector", ["a=b,", "a in ()", "in (x)", "a=b c", "a>x", "-a=b", "a=b!"])
def test_malformed_label_selectors_are_rejected(selector: str) -> None:
    with pytest.raises(ApiError, match="unable to parse requirement"):
        LabelSelector.parse(selector)


def test_set_based_values_and_whitespace() -> None:
    parsed = LabelSelector.parse(" env  in (prod, staging) ,  tier notin (cache),!legacy ")
    assert [(r.key, r.op, r.values) for r in parsed.requirements] == [
        ("env", "in", ("prod", "staging")),
        ("tier", "notin", ("cache",)),
        ("legacy", "!", ()),
    ]


def test_label_selector_objects_render_as_strings() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    text = selector_to_string(selector)
    assert text == "app=web,tier in (a,b),!legacy"
    assert LabelSelector.parse(text).matches({"app": "web", "tier": "a"})


def test_field_selectors_support_escapes_and_refuse_unknown_fields() -> None:
    parsed = FieldSelector.parse(r"metadata.name=a\,b,metadata.namespace!=kube-system", "", "configmaps")
    assert parsed.matches({"metadata": {"name": "a,b", "namespace": "default"}})
    assert not parsed.matches({"metadata": {"name": "a", "namespace": "default"}})
    assert FieldSelector.parse("status.phase=Running", "", "pods").matches({"status": {"phase": "Running"}})
    with pytest.raises(ApiError, match="field label not supported"):
        FieldSelector.parse("status.phase=Running", "", "configmaps")
