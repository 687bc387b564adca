"""The proxy's native build: the proxy says which build it runs, runs the compiled hot path only
when it was built from the sources as they are, and falls back to the interpreted one otherwise.

Under CI the native build must be there and in use (`make test` builds it): the benchmark's
figures are for the native build, so the tests run it too; `make test` runs the proxy's tests
once more with ROLLWISE_PROXY_PURE=1 for the interpreted one."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from rollwise.platforms.local.proxy import native
from tests.proxy.conftest import ProxyFactory, Upstreams, get, table


def _build_in_metrics(metrics: str) -> str:
    m = re.search(r'^rollwise_proxy_build_info\{build="(\w+)"\} 1$', metrics, re.M)
    assert m, metrics
    return m.group(1)


def test_the_proxy_says_which_build_serves(start_proxy: ProxyFactory, upstreams: Upstreams) -> None:
    proxy = start_proxy(table({"a": 100}, upstreams))
    conn = proxy.connection()
    assert get(conn)[:2] == (200, "a")
    expected = native.decide()[0]
    if os.environ.get("CI") == "true" and os.environ.get(native.PURE_ENV, "") in ("", "0"):
        assert expected == "native", f"CI runs the native build: {native.decide()[1]}"
    assert _build_in_metrics(proxy.metrics()) == expected
    if expected == "native":
        # The compiled modules are the ones loaded in this process too (the package's import hook).
        import rollwise.platforms.local.proxy.protocol as protocol

        assert Path(protocol.__file__).parent == native.NATIVE_DIR


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    for name in native.SOURCES:
        shutil.copy(native.HERE / name, src / name)
    built = tmp_path / "_native"
    built.mkdir()
    (built / "STAMP").write_text(json.dumps({"fingerprint": native.fingerprint(src)}))
    return src, built


def test_a_build_is_used_only_for_the_sources_it_was_made_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    src, built = _sources(tmp_path)
    assert native.decide(built, src) == ("native", "")
    # An edited source: the build no longer stands for it.
    path = src / native.SOURCES[0]
    path.write_text(path.read_text() + "\n# edited\n")
    build, reason = native.decide(built, src)
    assert build == "python" and "older than the sources" in reason
    (built / "STAMP").write_text("{not json")
    build, reason = native.decide(built, src)
    assert build == "python" and "unreadable native build stamp" in reason and str(built / "STAMP") in reason
    (built / "STAMP").unlink()
    assert native.decide(built, src) == ("python", "no native build (run `make native`)")


def test_the_interpreted_build_can_be_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_proxy: ProxyFactory, upstreams: Upstreams
) -> None:
    src, built = _sources(tmp_path)
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert native.decide(built, src) == ("python", f"{native.PURE_ENV} is set")
    proxy = start_proxy(table({"a": 100}, upstreams))  # inherits the environment
    assert get(proxy.connection())[:2] == (200, "a")
    assert _build_in_metrics(proxy.metrics()) == "python"
