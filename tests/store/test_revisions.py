from __future__ import annotations

import pytest

from rollwise.platforms.local.store import RolloutNotFoundError, Store


@pytest.fixture
def app(store: Store) -> Store:
    store.apply_rollout("app", {}, "")
    return store


def numbers(store: Store) -> list[tuple[str, int]]:
    return [(r.hash, r.number) for r in store.revisions("app")]


def test_numbers_rise_and_undo_renumbers_like_kubectl(app: Store) -> None:
    assert app.record_revision("app", "aaa", {"image": "v1"}).number == 1
    assert app.record_revision("app", "bbb", {"image": "v2"}).number == 2
    assert app.record_revision("app", "bbb", {"image": "v2"}).number == 2  # still the newest: unchanged
    undo = app.record_revision("app", "aaa", {"image": "v1"})
    assert undo.number == 3 and undo.template == {"image": "v1"}
    assert numbers(app) == [("bbb", 2), ("aaa", 3)]
    assert app.revision_by_number("app", 3) == app.revision("app", "aaa")
    assert app.revision_by_number("app", 1) is None


def test_numbers_keep_rising_after_pruning(app: Store) -> None:
    for i, h in enumerate(["aaa", "bbb", "ccc"]):
        app.record_revision("app", h, {"i": i})
    assert app.prune_revisions("app", keep={"ccc"}) == 2
    assert numbers(app) == [("ccc", 3)]
    assert app.record_revision("app", "ddd", {"i": 3}).number == 4


def test_one_hash_one_template(app: Store) -> None:
    app.record_revision("app", "aaa", {"image": "v1"})
    with pytest.raises(ValueError, match="already recorded with another template"):
        app.record_revision("app", "aaa", {"image": "v2"})


def test_revisions_need_their_rollout(store: Store) -> None:
    with pytest.raises(RolloutNotFoundError):
        store.record_revision("ghost", "aaa", {})
