"""One run at a time per work directory: a nightly run never overlaps another."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import PipelineError


@contextlib.contextmanager
def run_lock(work_dir: Path) -> Iterator[None]:
    """Hold ``work_dir/run.lock``; a second holder fails at once with one clear line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "run.lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise PipelineError(f"another run holds {path} (pid {holder})", step="lock") from e
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)
