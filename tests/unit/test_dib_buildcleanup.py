"""pipeline.image.buildcleanup: finding and releasing what builds leave mounted and attached."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.image import buildcleanup

BUILD_ID = "0123456789abcdef"
OTHER_ID = "fedcba9876543210"


# --- leak finding ------------------------------------------------------------

def test_mounts_under_innermost_first(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(textwrap.dedent("""\
        22 1 0:21 / / rw - ext4 /dev/vda rw
        30 22 0:40 / /w/tmp/b rw - tmpfs tmpfs rw
        31 30 7:0 / /w/tmp/b/mnt rw - ext4 /dev/loop0p1 rw
        32 31 0:5 / /w/tmp/b/mnt/dev rw - devtmpfs udev rw
        33 22 0:41 / /w/tmp/bb rw - tmpfs tmpfs rw
        34 22 0:42 / /w/tmp/b/with\\040space rw - tmpfs tmpfs rw
        """))
    assert buildcleanup.mounts_under(Path("/w/tmp/b"), info) == [
        Path("/w/tmp/b/with space"), Path("/w/tmp/b/mnt/dev"), Path("/w/tmp/b/mnt"),
        Path("/w/tmp/b")]


def test_loops_backed_under(tmp_path):
    for loop, backing in [("loop0", "/w/tmp/b/dib/image0.raw (deleted)"),
                          ("loop1", "/elsewhere/disk.raw"), ("loop2", "/w/tmp/bb/x.raw")]:
        (tmp_path / loop / "loop").mkdir(parents=True)
        (tmp_path / loop / "loop/backing_file").write_text(backing + "\n")
    (tmp_path / "loop3").mkdir()  # unattached: no loop/ directory
    assert buildcleanup.loops_backed_under(Path("/w/tmp/b"), tmp_path) == ["/dev/loop0"]


# --- scratch directory names and pids ------------------------------------------

@pytest.mark.parametrize("name, expected", [
    (f"build-{BUILD_ID}-4242", 4242),
    (f"build-{BUILD_ID}-4242.dib-k3_x9a", 4242),
    (f"build-{OTHER_ID}-4242", None),
    (f"build-{BUILD_ID}-x", None),
    (f"build-{BUILD_ID}-0", None),
    (f"build-{BUILD_ID}-{2**31}", None),
    (f"build-{BUILD_ID}-4242-12", None),
    (f"build-{BUILD_ID}-4242.other", None),
    (f"build-{BUILD_ID}", None),
    (f"build-{BUILD_ID}0-4242", None),
    (f"imagefleet-base-{BUILD_ID[:12]}-abc", None),
], ids=["scratch", "dib-tmpdir", "other-build", "no-pid", "pid-0", "pid-too-big",
        "trailing-dash", "other-suffix", "no-pid-part", "longer-id", "old-dib-tmpdir"])
def test_scratch_pid(name, expected):
    assert buildcleanup.scratch_pid(name, BUILD_ID) == expected


def test_scratch_names_round_trip():
    assert buildcleanup.scratch_pid(buildcleanup.scratch_name(BUILD_ID, 17), BUILD_ID) == 17
    prefix = buildcleanup.dib_tmp_prefix(BUILD_ID, 17)
    assert buildcleanup.scratch_pid(prefix + "a1_b2", BUILD_ID) == 17


@pytest.fixture
def dead_pids():
    """Pids of processes that have exited and been reaped."""
    procs = [subprocess.Popen(["true"]) for _ in range(2)]
    for proc in procs:
        proc.wait()
    return [proc.pid for proc in procs]


@pytest.fixture
def eperm_pid(dead_pids, monkeypatch):
    """A pid that ``os.kill`` refuses to signal: someone else's process."""
    real_kill = os.kill

    def kill(pid, sig):
        if pid == dead_pids[1]:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    return dead_pids[1]


def test_pid_alive(dead_pids, eperm_pid):
    assert buildcleanup.pid_alive(os.getpid())
    assert not buildcleanup.pid_alive(dead_pids[0])
    assert buildcleanup.pid_alive(eperm_pid)


# --- releasing, on a fake host -----------------------------------------------------

class FakeHost:
    """A mountinfo file, a /sys/block and a /dev/mapper tree, and a ``run`` that edits them."""

    def __init__(self, root: Path):
        self.mountinfo = root / "mountinfo"
        self.sys_block = root / "sys/block"
        self.dev_mapper = root / "dev/mapper"
        self.sys_block.mkdir(parents=True)
        self.dev_mapper.mkdir(parents=True)
        self.points: list[str] = []
        self.failing: set[str] = set()
        self.ran: list[str] = []
        self._write()

    def paths(self) -> dict:
        return dict(mountinfo=self.mountinfo, sys_block=self.sys_block,
                    dev_mapper=self.dev_mapper)

    def mount(self, point: Path) -> None:
        self.points.append(str(point))
        self._write()

    def attach(self, loop: str, backing: Path, partitions: int = 0) -> None:
        (self.sys_block / loop / "loop").mkdir(parents=True)
        (self.sys_block / loop / "loop/backing_file").write_text(f"{backing} (deleted)\n")
        for n in range(1, partitions + 1):
            (self.sys_block / loop / f"{loop}p{n}").mkdir()
            (self.dev_mapper / f"{loop}p{n}").symlink_to(f"../dm-{n}")

    def attached(self) -> list[str]:
        return sorted(p.parent.name for p in self.sys_block.glob("*/loop"))

    def _write(self) -> None:
        lines = ["22 1 0:21 / / rw - ext4 /dev/vda rw"]
        for i, point in enumerate(self.points):
            escaped = point.replace(" ", "\\040")
            lines.append(f"{30 + i} 22 0:{40 + i} / {escaped} rw - tmpfs tmpfs rw")
        self.mountinfo.write_text("\n".join(lines) + "\n")

    def run(self, argv, *, timeout, log_path, check):
        command = " ".join(argv)
        self.ran.append(command)
        if command in self.failing:
            return SimpleNamespace(returncode=32)
        if argv[0] == "umount":
            self.points.remove(argv[-1])
            self._write()
        elif argv[:2] == ["losetup", "-d"]:
            shutil.rmtree(self.sys_block / Path(argv[2]).name / "loop")
        return SimpleNamespace(returncode=0)


@pytest.fixture
def host(tmp_path, monkeypatch):
    fake = FakeHost(tmp_path / "host")
    monkeypatch.setattr(buildcleanup, "run", fake.run)
    return fake


def test_release_build_resources(tmp_path, host):
    build = tmp_path / "tmp/b"
    (build / "dib_build.x/mnt").mkdir(parents=True)
    host.mount(build / "dib_build.x")
    host.mount(build / "dib_build.x/mnt")
    host.attach("loop0", build / "dib_build.x/image0.raw", partitions=1)
    host.attach("loop1", tmp_path / "tmp/bb/image0.raw")
    done = buildcleanup.release_build_resources(build, **host.paths())
    assert done == [f"umount {build}/dib_build.x/mnt", f"umount {build}/dib_build.x",
                    "partx -d /dev/loop0", "losetup -d /dev/loop0"]
    assert not build.exists()
    assert host.attached() == ["loop1"] and not any(host.dev_mapper.iterdir())


@pytest.mark.parametrize("failing, expected, removed", [
    ({"umount {p}"}, ["umount -l {p}"], True),
    ({"umount {p}", "umount -l {p}"}, [], False),
], ids=["lazy", "stuck"])
def test_release_build_resources_when_umount_fails(tmp_path, host, failing, expected, removed):
    build = tmp_path / "tmp/b"
    build.mkdir(parents=True)
    host.mount(build)
    host.failing = {f.format(p=build) for f in failing}
    done = buildcleanup.release_build_resources(build, **host.paths())
    assert done == [e.format(p=build) for e in expected]
    assert build.exists() is not removed


# --- releasing the builds of dead processes ------------------------------------------

DEAD, DEAD_TMP = f"build-{BUILD_ID}-{{dead}}", f"build-{BUILD_ID}-{{dead}}.dib-k3x9"


@pytest.mark.parametrize("dirs, mounts, loops, failing, done, left", [
    # a killed build: its scratch dir and DIB's TMPDIR beside it, with mounts and a loop
    ([DEAD, DEAD_TMP],
     [f"{DEAD_TMP}/dib_build.x", f"{DEAD_TMP}/dib_build.x/mnt"],
     [("loop0", f"{DEAD_TMP}/dib_build.x/image0.raw", 1)], set(),
     [f"removed {{root}}/{DEAD}",
      f"umount {{root}}/{DEAD_TMP}/dib_build.x/mnt", f"umount {{root}}/{DEAD_TMP}/dib_build.x",
      "partx -d /dev/loop0", "losetup -d /dev/loop0", f"removed {{root}}/{DEAD_TMP}"],
     []),
    # a build still running, and one of a process we may not signal: untouched
    ([f"build-{BUILD_ID}-{{live}}", f"build-{BUILD_ID}-{{live}}.dib-abc",
      f"build-{BUILD_ID}-{{eperm}}"],
     [f"build-{BUILD_ID}-{{live}}.dib-abc/mnt", f"build-{BUILD_ID}-{{eperm}}/mnt"],
     [("loop0", f"build-{BUILD_ID}-{{live}}.dib-abc/image0.raw", 0)], set(), [],
     [f"build-{BUILD_ID}-{{live}}", f"build-{BUILD_ID}-{{live}}.dib-abc",
      f"build-{BUILD_ID}-{{eperm}}"]),
    # a dead build next to a live one: only the dead one's resources are released
    ([DEAD, f"build-{BUILD_ID}-{{live}}"],
     [f"{DEAD}/mnt", f"build-{BUILD_ID}-{{live}}/mnt"],
     [("loop0", f"{DEAD}/image0.raw", 0), ("loop1", f"build-{BUILD_ID}-{{live}}/image0.raw", 0)],
     set(),
     [f"umount {{root}}/{DEAD}/mnt", "losetup -d /dev/loop0", f"removed {{root}}/{DEAD}"],
     [f"build-{BUILD_ID}-{{live}}"]),
    # names that are not this build's scratch dirs, even with dead pids
    ([f"build-{OTHER_ID}-{{dead}}", f"build-{BUILD_ID}-x", f"build-{BUILD_ID}-{{dead}}-2",
      f"build-{BUILD_ID}", "unrelated"],
     [f"build-{OTHER_ID}-{{dead}}/mnt"], [], set(), [],
     [f"build-{OTHER_ID}-{{dead}}", f"build-{BUILD_ID}-x", f"build-{BUILD_ID}-{{dead}}-2",
      f"build-{BUILD_ID}", "unrelated"]),
    # a mount that will not go: the directory stays, and is not reported removed
    ([DEAD], [f"{DEAD}/mnt"], [], {f"umount {{root}}/{DEAD}/mnt",
                                   f"umount -l {{root}}/{DEAD}/mnt"}, [], [DEAD]),
], ids=["dead", "live-and-eperm", "dead-beside-live", "other-names", "stuck-mount"])
def test_release_stale_builds(tmp_path, host, dead_pids, eperm_pid, dirs, mounts, loops,
                              failing, done, left):
    root = tmp_path / "work/tmp"
    names = dict(dead=dead_pids[0], live=os.getpid(), eperm=eperm_pid, root=root)

    def fill(text: str) -> str:
        return text.format(**names)

    for name in dirs:
        (root / fill(name)).mkdir(parents=True)
    for point in mounts:
        (root / fill(point)).mkdir(parents=True, exist_ok=True)
        host.mount(root / fill(point))
    for loop, backing, partitions in loops:
        host.attach(loop, root / fill(backing), partitions)
    host.failing = {fill(f) for f in failing}
    expected_mounts = [p for p in host.points
                       if any(p.startswith(f"{root / fill(d)}/") for d in left)]

    assert buildcleanup.release_stale_builds(root, BUILD_ID, **host.paths()) == \
        [fill(d) for d in done]
    assert sorted(p.name for p in root.iterdir()) == sorted(fill(d) for d in left)
    assert host.points == expected_mounts


def test_release_stale_builds_leaves_files_and_symlinks(tmp_path, host, dead_pids):
    root = tmp_path / "tmp"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.mkdir()
    (root / f"build-{BUILD_ID}-{dead_pids[0]}").write_text("not a directory")
    (root / f"build-{BUILD_ID}-{dead_pids[1]}").symlink_to(elsewhere)
    assert buildcleanup.release_stale_builds(root, BUILD_ID, **host.paths()) == []
    assert len(list(root.iterdir())) == 2 and elsewhere.is_dir()
    assert host.ran == []


def test_release_stale_builds_without_a_tmp_dir(tmp_path, host):
    assert buildcleanup.release_stale_builds(tmp_path / "none", BUILD_ID, **host.paths()) == []
