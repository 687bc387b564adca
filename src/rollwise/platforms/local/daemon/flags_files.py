"""The local platform's flags files: one flagd document per FlagSet, at
`<state dir>/flags/<namespace>/<name>.json`, which every replica of a rollout naming the FlagSet
finds through its `fileEnv` variable.

Replicas re-read the file while they run (the flagd provider polls its modification time), so a
write must never show a half-written file and must always move the modification time forward:
the text goes to a temporary file in the same directory, gets a modification time later than the
file it replaces, and is renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from rollwise.flags.document import dumps, render
from rollwise.spec.flags import FlagSet

# Filesystems keep times at the kernel's clock tick; two writes within one tick would otherwise
# share a modification time, and a poller that saw the first would never see the second.
MIN_STEP_NS = 1_000_000


def flags_dir(state_dir: Path) -> Path:
    return state_dir / "flags"


def flags_file(state_dir: Path, namespace: str, name: str) -> Path:
    return flags_dir(state_dir) / (namespace or "default") / f"{name}.json"


def write(path: Path, text: str) -> bool:
    """Write `text` to `path` atomically; False when the file already holds exactly that."""
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        before = 0
        with contextlib.suppress(OSError):
            before = path.stat().st_mtime_ns
        stamp = max(time.time_ns(), os.stat(tmp).st_mtime_ns, before + MIN_STEP_NS)
        os.utime(tmp, ns=(stamp, stamp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def write_flagset(state_dir: Path, fs: FlagSet) -> Path:
    path = flags_file(state_dir, fs.metadata.namespace or "default", fs.metadata.name)
    write(path, dumps(render(fs)))
    return path
