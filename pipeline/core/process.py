"""Long-lived subprocesses (a booted qemu), started the way ``runner`` starts short ones.

``runner.run`` waits for its command to finish; a VM must keep running while we
talk to it, so this module only starts it: argv list, explicit environment, its
own process group, stdout and stderr appended to a log file.  Stopping goes
through ``runner.terminate`` so the whole group dies.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.core import runner
from pipeline.core.errors import ToolMissingError

LOG = logging.getLogger(__name__)


def spawn(argv: Sequence[str], log_path: str | os.PathLike, *,
          env: Mapping[str, str] | None = None, inherit_env: bool = True,
          cwd: str | os.PathLike | None = None, where: str | None = None,
          step: str | None = None) -> subprocess.Popen:
    """Start ``argv`` in a new process group, its output going to ``log_path``.

    The caller owns the process and must ``stop()`` it (a ``finally`` or
    context manager), or it outlives the pipeline.
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ) if inherit_env else {}
    if env:
        full_env.update(env)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    LOG.debug("spawning %s", argv)
    with open(log_path, "ab") as log_file:
        log_file.write(f"$ {' '.join(argv)}\n".encode())
        log_file.flush()
        try:
            return subprocess.Popen(runner.die_with_parent(argv, full_env), env=full_env,
                                    cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except FileNotFoundError as e:
            raise ToolMissingError(f"{argv[0]} not found (run 'make setup')",
                                   where=where, step=step) from e


def stop(proc: subprocess.Popen, grace: float = 5.0) -> int | None:
    """Terminate the process group (SIGTERM, then SIGKILL); returns the exit code."""
    if proc.poll() is None:
        runner.terminate(proc, grace=grace)
    return proc.returncode
