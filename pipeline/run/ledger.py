"""Which tasks really ran: one JSON line per task completion, appended under the work dir.

Luigi skips a task whose output exists, so "this run did no work" and "each
task ran once across several worker processes" are questions about what
actually executed.  Each completed task appends one line (a single
``O_APPEND`` write, so processes never interleave) to ``logs/tasks.jsonl``;
the report counts the lines since the run began.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any

from pipeline.run.workdir import WorkDir


def record(work_dir: Path, task_id: str, family: str, *, started: float | None = None,
           cloud: str | None = None, disk_format: str | None = None) -> None:
    """``started``, ``cloud`` and ``disk_format`` place the task on the run's timeline."""
    path = WorkDir(work_dir).task_ledger
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"task_id": task_id, "task": family, "time": time.time(), "pid": os.getpid(),
             "host": os.uname().nodename}
    entry.update({k: v for k, v in (("started", started), ("cloud", cloud),
                                    ("disk_format", disk_format)) if v is not None})
    line = json.dumps(entry) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def entries(work_dir: Path, since: float = 0.0) -> list[dict[str, Any]]:
    path = WorkDir(work_dir).task_ledger
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue          # a line cut short by a kill
        if entry.get("time", 0) >= since:
            found.append(entry)
    return found


def counts(work_dir: Path, since: float = 0.0) -> dict[str, int]:
    """Tasks run since ``since``, by family: ``{"BuildBaseImage": 1, ...}``."""
    return dict(collections.Counter(e["task"] for e in entries(work_dir, since)))
