"""The one place the pipeline starts subprocesses.

Argv lists only (never a shell), an explicit environment, a timeout that kills
the whole process group, every output line streamed to a log file and to an
optional callback (progress), and a typed ``CommandError`` carrying the
command, exit code and the tail of stderr.  Every child gets SIGTERM when the
pipeline dies (``setpriv --pdeathsig``), so a killed run leaves no qemu,
qemu-img or diskimage-builder running on behind it.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import CommandError, ToolMissingError

LOG = logging.getLogger(__name__)

_SPLIT = re.compile(rb"[\r\n]+")
TAIL_LINES = 30


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr_tail: str
    seconds: float


SETPRIV = shutil.which("setpriv")   # util-linux, Essential in Debian


def die_with_parent(argv: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``argv`` run so that it gets SIGTERM if our process dies first.

    A missing tool still raises ``FileNotFoundError`` here, as Popen would.
    """
    argv = [str(a) for a in argv]
    path = (env or os.environ).get("PATH")
    if os.sep not in argv[0] and not shutil.which(argv[0], path=path):
        raise FileNotFoundError(argv[0])
    if os.sep in argv[0] and not os.access(argv[0], os.X_OK):
        raise FileNotFoundError(argv[0])
    if not SETPRIV:
        return argv
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]


def which(binary: str) -> str:
    """Resolve ``binary`` on PATH or raise ``ToolMissingError``."""
    found = shutil.which(binary)
    if not found:
        raise ToolMissingError(f"{binary} not found on PATH (run 'make setup')")
    return found


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        inherit_env: bool = True, cwd: str | os.PathLike | None = None,
        timeout: float | None = None, log_path: str | os.PathLike | None = None,
        on_line: Callable[[str], None] | None = None, capture: bool = False,
        where: str | None = None, step: str | None = None,
        check: bool = True) -> Result:
    """Run ``argv`` to completion.

    ``env`` is added to (``inherit_env``) or replaces the environment.
    ``capture`` keeps stdout in ``Result.stdout`` (for small JSON answers);
    otherwise stdout lines only go to the log and ``on_line``.
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ) if inherit_env else {}
    if env:
        full_env.update(env)
    log_file = None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in finally
        log_file.write(f"$ {' '.join(argv)}\n".encode())
        log_file.flush()
    lock = threading.Lock()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    captured: list[bytes] = []
    start = time.monotonic()
    LOG.debug("running %s", argv)
    try:
        proc = subprocess.Popen(die_with_parent(argv, full_env), env=full_env, cwd=cwd,
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except FileNotFoundError as e:
        if log_file:
            log_file.close()
        raise ToolMissingError(f"{argv[0]} not found (run 'make setup')",
                               where=where, step=step) from e

    def pump(stream, is_err: bool) -> None:
        pending = b""
        for chunk in iter(lambda: stream.read1(65536), b""):
            if capture and not is_err:
                captured.append(chunk)
            with lock:
                if log_file:
                    log_file.write(chunk)
                    log_file.flush()
            if not (is_err or on_line):
                continue
            pending += chunk
            *lines, pending = _SPLIT.split(pending)
            for raw in lines:
                _deliver(raw, is_err)
        if pending:
            _deliver(pending, is_err)

    def _deliver(raw: bytes, is_err: bool) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            return
        if is_err:
            tail.append(line)
        if on_line:
            try:
                on_line(line)
            except Exception:  # a progress callback must never kill the run
                LOG.debug("on_line callback failed", exc_info=True)

    threads = [threading.Thread(target=pump, args=(proc.stdout, False), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)]
    for t in threads:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        terminate(proc)
    except BaseException:
        terminate(proc)
        raise
    finally:
        for t in threads:
            t.join(timeout=10)
        if log_file:
            log_file.write(f"# exit {proc.returncode}\n".encode())
            log_file.close()
    result = Result(argv, proc.returncode, b"".join(captured).decode("utf-8", "replace"),
                    "\n".join(tail), time.monotonic() - start)
    if check and (timed_out or proc.returncode != 0):
        raise CommandError(argv, None if timed_out and proc.returncode is None else proc.returncode,
                           result.stderr_tail, log_path=str(log_path) if log_path else None,
                           where=where, step=step, timed_out=timed_out)
    return result


def terminate(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
