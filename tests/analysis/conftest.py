from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.analysis.servers import RunningPrometheus, prometheus


@pytest.fixture(scope="session")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    with prometheus(tmp_path_factory.mktemp("prometheus")) as running:
        yield running
