from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.plane import Plane


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    p = Plane(tmp_path / "state").start()
    try:
        yield p
    finally:
        p.stop()
