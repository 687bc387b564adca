"""Per-process logs under the state dir: appended across restarts, rotated at a size limit while
the process keeps writing to the same descriptor, one old file kept."""

from __future__ import annotations

from pathlib import Path

from rollwise.platforms.local.supervisor import Tuning
from tests.supervisor.helpers import python, run, supervisor, until, views

# 400 numbered lines of ~100 bytes, paced so that each rotation check sees a bounded growth.
CHATTY = """
import sys, time
for i in range(400):
    stream = sys.stderr if i % 2 else sys.stdout
    print(f'line {i:04d} ' + 'x' * 90, file=stream, flush=True)
    time.sleep(0.004)
time.sleep(600)
"""

LIMIT = 8 * 1024


def test_logs_rotate_at_the_limit(tmp_path: Path) -> None:
    async def scenario() -> None:
        tuning = Tuning(log_max_bytes=LIMIT, rotate_interval=0.1, poll_interval=0.05)
        async with supervisor(tmp_path / "state", tuning=tuning) as (sup, _):
            await sup.converge("web", "r1", python(CHATTY), 1)
            path = sup.log_path("web", "r1", 0)
            assert path == tmp_path / "state" / "logs" / "web" / "r1" / "0.log"
            old = path.with_name("0.log.1")
            largest = [0, 0]

            def finished() -> bool:
                for i, p in enumerate((path, old)):
                    if p.exists():
                        largest[i] = max(largest[i], p.stat().st_size)
                return "line 0399" in path.read_text()

            await until(finished, what="the last line in the current file")
            # Several rotations happened (40 kB written, 8 kB limit), none let a file run away.
            assert old.exists() and max(largest) < 2 * LIMIT, largest
            current, previous = path.read_text(), old.read_text()
            numbers = [int(line[5:9]) for line in (previous + current).splitlines() if line.startswith("line ")]
            assert numbers == sorted(numbers) and numbers[-1] == 399 and numbers[0] > 0
            # The O_APPEND descriptor writes at the new end: no hole of NULs after a truncation.
            assert "\0" not in current and views(sup)[0].restarts == 0

    run(scenario())
