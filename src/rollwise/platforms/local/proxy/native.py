"""The proxy's native build: its hot path (protocol.py, upstream.py) compiled to C with mypyc, from
the same sources, typed as they are for mypy.

Interpreted, the hot path spends most of a request's Python time in the bytecode loop: at a
fixed 8,000 requests/s each request meets cold caches, and the interpreter's share was about three
times the stack's own (bench/RESULTS.md). Compiled, the same code runs without it.

    python scripts/build-native.py build|ensure|status   (`make native` ensures it; make test and
                                                          make demo do too)

The build goes to `_native/` beside the sources, with a stamp holding a fingerprint of the
sources it was made from. The package (see __init__.py) puts `_native/` first on its search path
only when the stamp matches the sources as they are now, so an edited source is never shadowed by a
stale build: the proxy then runs interpreted and says why. ROLLWISE_PROXY_PURE=1 asks for the
interpreted build whatever is there (the test suite runs the proxy's tests both ways)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NATIVE_DIR = HERE / "_native"
SOURCES = ("protocol.py", "upstream.py", "table.py", "stats.py", "state.py")
# The shared library of the compiled modules, a module of this package (see mypycify's group_name).
GROUP = "rollwise.platforms.local.proxy.hotpath"
PURE_ENV = "ROLLWISE_PROXY_PURE"


def fingerprint(source_dir: Path = HERE) -> str:
    """What a build is valid for: the sources' bytes and the interpreter's ABI."""
    digest = hashlib.sha256()
    digest.update((sysconfig.get_config_var("EXT_SUFFIX") or "").encode())
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (source_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()


def stale(native_dir: Path = NATIVE_DIR, source_dir: Path = HERE) -> str | None:
    """Why the build in `native_dir` cannot stand for the sources in `source_dir`; None if it can."""
    stamp = native_dir / "STAMP"
    try:
        built = json.loads(stamp.read_text())["fingerprint"]
    except FileNotFoundError:
        return "no native build (run `make native`)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable native build stamp {stamp}: {exc}"
    if built != fingerprint(source_dir):
        return "the native build is older than the sources (run `make native`)"
    return None


def decide(native_dir: Path = NATIVE_DIR, source_dir: Path = HERE) -> tuple[str, str]:
    """("native", "") when the build in `native_dir` was made from the sources in `source_dir`,
    else ("python", why not)."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return "python", f"{PURE_ENV} is set"
    reason = stale(native_dir, source_dir)
    return ("python", reason) if reason else ("native", "")


# The build this process runs, and why not the native one: set when the package is imported.
ACTIVE: tuple[str, str] = ("python", "not activated")


def activate(package_path: list[str]) -> tuple[str, str]:
    """Called by the package before any of its modules is imported."""
    global ACTIVE
    build, reason = decide()
    if build == "native":
        package_path.insert(0, str(NATIVE_DIR))
    ACTIVE = (build, reason)
    return ACTIVE


def build(native_dir: Path = NATIVE_DIR) -> None:
    """Compile the hot path into `native_dir`, replacing what is there only once all of it built."""
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    src_root = HERE.parents[3]  # the directory holding the `rollwise` package
    rel = [str((HERE / name).relative_to(src_root)) for name in SOURCES]
    stamp_value = fingerprint()
    with tempfile.TemporaryDirectory(prefix="rollwise-native-") as tmp:
        work = Path(tmp)
        cwd = os.getcwd()
        os.chdir(src_root)  # mypyc names modules by their paths from here
        try:
            extensions = mypycify(rel, opt_level="3", group_name=GROUP, target_dir=str(work / "c"))
            dist = Distribution({"name": "rollwise-proxy-native", "ext_modules": extensions})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(work / "lib")
            cmd.build_temp = str(work / "temp")
            dist.run_command("build_ext")
        finally:
            os.chdir(cwd)
        built = sorted((work / "lib").rglob("*" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")))
        names = {p.name.split(".")[0] for p in built}
        expected = {name.removesuffix(".py") for name in SOURCES} | {GROUP.rsplit(".", 1)[1] + "__mypyc"}
        if names != expected:
            raise RuntimeError(f"native build made {sorted(names)}, expected {sorted(expected)}")
        staging = native_dir.with_name(native_dir.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in built:
            shutil.copy2(path, staging / path.name)
        (staging / "STAMP").write_text(json.dumps({"fingerprint": stamp_value, "sources": list(SOURCES)}) + "\n")
        shutil.rmtree(native_dir, ignore_errors=True)
        staging.rename(native_dir)


def main(argv: list[str]) -> int:
    if argv[1:] == ["ensure"] and stale() is None:
        return 0
    if argv[1:] in (["build"], ["ensure"]):
        try:
            build()
        except Exception as exc:  # one line for make, not a traceback
            print(f"rollwise: native proxy build failed: {exc}", file=sys.stderr)
            return 1
        print(f"rollwise: native proxy build in {NATIVE_DIR}")
        return 0
    if argv[1:] == ["status"]:
        kind, reason = decide()
        print(kind + (f" ({reason})" if reason else ""))
        return 0
    print("usage: scripts/build-native.py build|ensure|status", file=sys.stderr)
    return 2
