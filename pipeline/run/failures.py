"""Failure records: why a task failed, written by the task, read by the CLI and the report.

A record names its stage and what it is about (a cloud, a disk format, or the
whole build), so a reader needs to know nothing of the tasks that wrote it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.core import atomicfile
from pipeline.run.workdir import WorkDir


@dataclass(frozen=True)
class Failure:
    task_id: str
    stage: str                      # build, convert, local_boot, upload, verify, retention
    error: str                      # the one line a user sees
    where: str | None = None
    cloud: str | None = None        # None: every cloud of ...
    disk_format: str | None = None  # ... this format (None: of every format)
    time: float = field(default_factory=time.time)
    started: float | None = None    # when the task began: its bar on the report's timeline

    def concerns(self, cloud: str, disk_format: str) -> bool:
        """Whether this failure stops ``cloud`` (which uploads ``disk_format``)."""
        return (self.cloud in (None, cloud)) and (self.disk_format in (None, disk_format))


def record(work_dir: WorkDir, failure: Failure) -> None:
    work_dir.failures_dir.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(work_dir.failure_record(failure.task_id),
                          json.dumps(asdict(failure)) + "\n")


def clear(work_dir: WorkDir, task_id: str) -> None:
    work_dir.failure_record(task_id).unlink(missing_ok=True)


def _parse(text: str) -> Failure | None:
    try:
        data: dict[str, Any] = json.loads(text)
        return Failure(**data)
    except (ValueError, TypeError):
        return None


def since(work_dir: WorkDir, started: float) -> list[Failure]:
    """This run's failures (recorded at or after ``started``), in task-id order."""
    found = []
    for path in sorted(work_dir.failures_dir.glob("*.json")):
        try:
            failure = _parse(path.read_text())
        except OSError:
            continue
        if failure and failure.time >= started:
            found.append(failure)
    return found
