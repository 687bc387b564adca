"""Run as a separate process by the store tests: writers for the concurrency test, and processes
that get SIGKILLed inside a transaction for the crash tests. Usage: worker.py MODE STATE_DIR ARGS..."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rollwise.platforms.local.store import StaleWriteError, Store


def writer(state_dir: Path, ident: str, iterations: int, go: Path) -> None:
    with Store.open(state_dir) as store:
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.005)
        name, conflicts = f"w{ident}", 0
        for i in range(1, iterations + 1):
            # One transaction: a reader must never see the new generation without its event.
            with store.transaction():
                store.apply_rollout(name, {"n": i}, f"n: {i}\n")
                store.add_event(name, "Normal", "Applied", f"n={i}")
            # Read-modify-write of a status the other writers also change: only optimistic
            # concurrency keeps every increment.
            while True:
                current = store.get_rollout("shared")
                assert current is not None
                status = current.status
                status["count"] = status.get("count", 0) + 1
                try:
                    store.write_status("shared", status, expected_version=current.version)
                    break
                except StaleWriteError:
                    conflicts += 1
        print(json.dumps({"conflicts": conflicts}), flush=True)


def crash_in_transaction(state_dir: Path) -> None:
    with Store.open(state_dir) as store, store.transaction():
        store.apply_rollout("doomed", {"image": "v1"}, "image: v1\n")
        store.add_event("doomed", "Normal", "Applied", "applied")
        print("inside", flush=True)
        time.sleep(60)


def crash_in_method(state_dir: Path) -> None:
    with Store.open(state_dir) as store:

        def pause(statement: str) -> None:
            # record_revision has bumped the rollout's revision counter; stop before it inserts.
            if statement.lstrip().startswith("INSERT INTO revisions"):
                print("inside", flush=True)
                time.sleep(60)

        store._session.conn.set_trace_callback(pause)
        store.record_revision("app", "abc123", {"image": "v1"})


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "writer":
        writer(Path(directory), rest[0], int(rest[1]), Path(rest[2]))
    elif mode == "crash-transaction":
        crash_in_transaction(Path(directory))
    elif mode == "crash-method":
        crash_in_method(Path(directory))
    elif mode == "open":
        with Store.open(Path(directory)) as s:
            print(s.schema_version(), flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
