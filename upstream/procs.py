"""Process and port helpers for the upstream services: free loopback ports
(``pipeline.core.ports``), process groups read from /proc, and whether a URL answers yet."""

from __future__ import annotations

import contextlib
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.core.ports import free_ports  # noqa: F401 - the services' ports
from pipeline.core.waiting import iterate_timeout


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without what would steer the services' Python or clients."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "OS_", "VIRTUAL_ENV"))}
    return {**env, **(extra or {})}


def kill_groups(pgids: list[int], grace: float = 10.0) -> None:
    """``kill_group`` for several groups, all told to stop first: the waits overlap."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    for pgid in pgids:
        kill_group(pgid, grace)


def kill_group(pgid: int, grace: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        with contextlib.suppress(Exception):
            for _ in iterate_timeout(grace, f"process group {pgid} to exit", wait=0.2):
                if not group_members(pgid):
                    return
    # The group may hold zombies of a dead parent; reaping is our child's job.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)


def answers(url: str, token: str | None = None) -> int | None:
    """The HTTP status ``url`` answers with, or None if nothing listens yet."""
    req = urllib.request.Request(url, headers={"X-Auth-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, urllib.error.URLError):
        return None
