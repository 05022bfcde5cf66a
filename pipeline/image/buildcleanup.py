"""Release what an image build leaves behind under ``<work_dir>/tmp``.

A diskimage-builder run mounts filesystems and attaches loop devices under its
TMPDIR; ``release_build_resources`` undoes that once the run is over.  A build
that was killed never gets that far, so ``release_stale_builds`` finds the
scratch directories of builds whose process is gone (they are named
``build-<build_id>-<pid>``, DIB's TMPDIR ``build-<build_id>-<pid>.dib-*``) and
releases those.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from pipeline.core.runner import run

LOG = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 60.0
MOUNTINFO = Path("/proc/self/mountinfo")
SYS_BLOCK = Path("/sys/block")
DEV_MAPPER = Path("/dev/mapper")
PID_MAX = 2**31 - 1  # pid_t is a C int; a larger number was never a pid


def scratch_name(build_id: str, pid: int) -> str:
    """The scratch directory name of build ``build_id`` run by process ``pid``."""
    return f"build-{build_id}-{pid}"


def dib_tmp_prefix(build_id: str, pid: int) -> str:
    """The ``mkdtemp`` prefix of DIB's TMPDIR, so that a killed build's one is found too."""
    return f"{scratch_name(build_id, pid)}.dib-"


def scratch_pid(name: str, build_id: str) -> int | None:
    """The pid in a directory name made by ``scratch_name``/``dib_tmp_prefix``, else None."""
    found = re.fullmatch(rf"build-{re.escape(build_id)}-(\d+)(\.dib-\w+)?", name)
    if not found:
        return None
    pid = int(found.group(1))
    return pid if 0 < pid <= PID_MAX else None


def pid_alive(pid: int) -> bool:
    """True unless no process ``pid`` exists (one we may not signal counts as alive).

    A zombie is dead: a killed run's processes wait as zombies until init reaps them.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def mounts_under(root: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points at or below ``root``, innermost (last mounted) first."""
    prefix = str(root).rstrip("/")
    found = []
    for line in mountinfo.read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return list(reversed(found))


def loops_backed_under(root: Path, sys_block: Path = SYS_BLOCK) -> list[str]:
    """Loop devices (``/dev/loopN``) whose backing file lies under ``root``."""
    prefix = str(root).rstrip("/") + "/"
    found = []
    for backing in sorted(sys_block.glob("loop*/loop/backing_file")):
        try:
            name = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if name.startswith(prefix):
            found.append(f"/dev/{backing.parent.parent.name}")
    return found


def release_build_resources(tmp_dir: Path, *, log_path: Path | None = None,
                            mountinfo: Path = MOUNTINFO, sys_block: Path = SYS_BLOCK,
                            dev_mapper: Path = DEV_MAPPER) -> list[str]:
    """Unmount and detach whatever a build left under ``tmp_dir``, then remove it.

    Returns the commands that succeeded.  ``tmp_dir`` stays if something is still
    mounted under it.
    """
    done: list[str] = []

    def attempt(argv: list[str]) -> bool:
        result = run(argv, timeout=CLEANUP_TIMEOUT, log_path=log_path, check=False)
        if result.returncode == 0:
            done.append(" ".join(argv))
        return result.returncode == 0

    for point in mounts_under(tmp_dir, mountinfo):
        attempt(["umount", str(point)])
    for loop in loops_backed_under(tmp_dir, sys_block):
        name = Path(loop).name
        for link in dev_mapper.glob(f"{name}p*"):
            if link.is_symlink():
                link.unlink()
        if any((sys_block / name).glob(f"{name}p*")):
            attempt(["partx", "-d", loop])
        attempt(["losetup", "-d", loop])
    for point in mounts_under(tmp_dir, mountinfo):
        attempt(["umount", str(point)]) or attempt(["umount", "-l", str(point)])
    if not mounts_under(tmp_dir, mountinfo):
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if done:
        LOG.warning("released what the build left behind: %s", "; ".join(done))
    return done


def release_stale_builds(tmp_root: Path, build_id: str, *, log_path: Path | None = None,
                         mountinfo: Path = MOUNTINFO, sys_block: Path = SYS_BLOCK,
                         dev_mapper: Path = DEV_MAPPER) -> list[str]:
    """Release the scratch directories of killed runs of build ``build_id``.

    Every ``build-<build_id>-<pid>`` directory (and ``….dib-*``, DIB's TMPDIR)
    directly under ``tmp_root`` whose pid no longer exists gets its mounts
    unmounted, its loop devices detached and is removed; those of live pids are
    left alone.  Returns what was done: the commands that succeeded and
    ``removed <dir>`` for each directory removed.
    """
    done: list[str] = []
    try:
        entries = sorted(Path(tmp_root).iterdir())
    except FileNotFoundError:
        return done
    for entry in entries:
        pid = scratch_pid(entry.name, build_id)
        if pid is None or entry.is_symlink() or not entry.is_dir() or pid_alive(pid):
            continue
        LOG.info("releasing %s, left by build process %d which is gone", entry, pid)
        done += release_build_resources(entry, log_path=log_path, mountinfo=mountinfo,
                                        sys_block=sys_block, dev_mapper=dev_mapper)
        if entry.exists():
            LOG.warning("could not remove %s (still mounted, or not ours to delete)", entry)
        else:
            done.append(f"removed {entry}")
    return done


def remove_stale_partials(target: Path) -> list[Path]:
    """Delete ``<target>-luigi-tmp-*`` files a killed run left beside ``target``.

    Luigi lets one instance of a task run at a time, so when the task starts,
    any temporary file of its output belongs to a run that died.
    """
    target = Path(target)
    removed = []
    for stale in target.parent.glob(f"{target.name}-luigi-tmp-*"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
