"""A control plane in its own process, for the adoption test to SIGKILL: it starts COUNT demo
replicas under a supervisor with JSON-file records, writes their views to READY once all are ready,
and waits to be killed.

usage: python control_plane.py STATE_DIR RECORDS_FILE COUNT READY_FILE"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path

from rollwise.platforms.local.supervisor import JsonFileRecords, Supervisor
from rollwise.spec.workload import ProcessTemplate


async def main(state: Path, records: Path, count: int, ready: Path) -> None:
    sup = Supervisor(state, JsonFileRecords(records))
    await sup.start()
    template = ProcessTemplate.model_validate({"command": ["rollwise-demo"], "env": {"DEMO_VERSION": "v1"}})
    await sup.converge("web", "r1", template, count)
    while True:
        views = sup.snapshot().get(("web", "r1"), [])
        if len(views) == count and all(v.ready for v in views):
            break
        await asyncio.sleep(0.05)
    body = json.dumps([dataclasses.asdict(v) for v in views], default=str)
    ready.with_suffix(".tmp").write_text(body)
    os.replace(ready.with_suffix(".tmp"), ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
