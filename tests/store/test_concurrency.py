"""Several processes at once on one database, as the daemon and CLIs are: no 'database is locked',
no lost update, and a reader always sees whole transactions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rollwise.platforms.local.store import Store
from rollwise.platforms.local.store.migrations import LATEST

WORKER = Path(__file__).with_name("worker.py")
WRITERS = 3
ITERATIONS = 300


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_writers_and_a_reader_in_separate_processes(state_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with Store.open(state_dir) as store:
        store.apply_rollout("shared", {}, "")
        writers = [spawn("writer", str(state_dir), str(i), str(ITERATIONS), str(go)) for i in range(WRITERS)]
        for w in writers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        go.touch()

        snapshots = 0
        while any(w.poll() is None for w in writers):
            with store.snapshot():
                for rollout in store.list_rollouts():
                    if rollout.name == "shared":
                        continue
                    # Applied and its event commit together, so a snapshot sees both or neither.
                    assert len(store.events(rollout.name, limit=None)) == rollout.generation
            snapshots += 1
            time.sleep(0.001)

        outputs = [w.communicate(timeout=60) for w in writers]
        for w, (_, err) in zip(writers, outputs, strict=True):
            assert w.returncode == 0, err
            assert "locked" not in err
        conflicts = sum(json.loads(out.strip().splitlines()[-1])["conflicts"] for out, _ in outputs)

        shared = store.get_rollout("shared")
        assert shared is not None
        # Every increment survived, however many times a writer had to retry a stale read.
        assert shared.status == {"count": WRITERS * ITERATIONS}
        assert shared.version == 1 + WRITERS * ITERATIONS
        for i in range(WRITERS):
            mine = store.get_rollout(f"w{i}")
            assert mine is not None and mine.generation == ITERATIONS and mine.spec == {"n": ITERATIONS}
        assert snapshots > 0
        print(f"{snapshots} consistent snapshots, {conflicts} stale writes retried")


def test_processes_opening_a_new_database_at_once(state_dir: Path) -> None:
    openers = [spawn("open", str(state_dir)) for _ in range(4)]
    for p in openers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == str(LATEST)
