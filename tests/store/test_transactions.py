"""All or nothing: an exception, or a SIGKILL between two statements, leaves no partial change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rollwise.platforms.local.store import Store, StoreError

WORKER = Path(__file__).with_name("worker.py")


def test_an_exception_rolls_back_the_whole_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.apply_rollout("app", {}, "")
        store.add_event("app", "Normal", "Applied", "x")
        raise RuntimeError("boom")
    assert store.get_rollout("app") is None
    assert store.list_rollouts() == []


def test_a_failed_method_inside_a_transaction_undoes_only_itself(store: Store) -> None:
    with store.transaction():
        store.apply_rollout("app", {}, "")
        store.record_revision("app", "aaa", {"image": "v1"})
        with pytest.raises(ValueError):
            store.record_revision("app", "aaa", {"image": "v2"})
        store.add_event("app", "Normal", "Applied", "x")
    assert [r.number for r in store.revisions("app")] == [1]
    assert len(store.events("app")) == 1


def test_a_snapshot_cannot_write(store: Store) -> None:
    with store.snapshot(), pytest.raises(StoreError, match="read snapshot"):
        store.apply_rollout("app", {}, "")


def kill_when_inside(mode: str, state_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), mode, str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "inside", proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_inside_a_transaction_leaves_no_partial_row(state_dir: Path) -> None:
    Store.open(state_dir).close()
    kill_when_inside("crash-transaction", state_dir)
    # A short busy timeout: the dead process's write lock must be gone, not merely waited out.
    with Store.open(state_dir, busy_timeout=1.0) as store:
        assert store.get_rollout("doomed") is None
        assert store.list_rollouts() == []
        assert store.apply_rollout("doomed", {"image": "v2"}, "") == (1, True)
        assert store.events("doomed") == []


def test_sigkill_between_two_statements_of_one_method(state_dir: Path) -> None:
    with Store.open(state_dir) as store:
        store.apply_rollout("app", {}, "")
    kill_when_inside("crash-method", state_dir)
    with Store.open(state_dir, busy_timeout=1.0) as store:
        assert store.revisions("app") == []
        # The counter bump that ran before the kill was rolled back too: the first number is still 1.
        assert store.record_revision("app", "abc123", {"image": "v1"}).number == 1


def test_one_store_shared_by_threads(store: Store) -> None:
    store.apply_rollout("app", {}, "")

    def work(n: int) -> None:
        for i in range(50):
            with store.transaction():
                store.add_event("app", "Normal", "Tick", f"{n}-{i}")
                assert store.events("app", limit=1)[0].message == f"{n}-{i}"  # our own write, not another's

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert len(store.events("app", limit=None)) == 200
