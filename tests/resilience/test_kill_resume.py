"""Kill the pipeline inside each stage, run it again: it completes, redoes nothing finished,
leaves one image per cloud and, after ``imagefleet cleanup``, nothing else.

The run is SIGKILLed with its whole process group (what the OOM killer or
``systemctl kill`` does) at a moment the test can see: a file the stage
writes, a log line, or a local-cloud fault that holds the stage still (its
``fired`` counter says the request arrived).  The local cloud itself is also
killed mid-upload and restarted from its data directory.

The scenarios run in two lanes side by side, each lane with clouds of its own
(the local cloud serves hp-like twice, as ``hp-like`` and ``hp-like-2``), so a
lane's leftovers count is never another lane's work in flight; each test then
reads its scenario's outcome.
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localcloud import testing
from pipeline.image import buildcleanup
from tests.pipeline_run import (
    Pipeline,
    clouds_yaml_with_profiles,
    kill_group,
    our_images,
    tiny_source,
    twin_personalities,
    wait_for,
    write_pipeline_yaml,
)
from tests.resilience.conftest import Leaks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
BASES = ["hp-like", "rackspace-like"]
FAKE_DIB = """#!/bin/sh
# disk-image-create stand-in: holds a loop device and a mount in its TMPDIR like
# the real one, waits to be killed the first time, then writes the tiny image.
while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift;; esac; shift; done
mkdir -p "$TMPDIR/mnt"
truncate -s 8M "$TMPDIR/disk"
losetup -f "$TMPDIR/disk"
mount -t tmpfs tmpfs "$TMPDIR/mnt"
touch "{marker}"
[ -e "{marker}.rerun" ] || sleep 120
umount "$TMPDIR/mnt"
losetup -j "$TMPDIR/disk" -O NAME -n | xargs -r -n1 losetup -d
cp "{tiny}" "$out.raw"
"""


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    root = tmp_path_factory.mktemp("localcloud")
    names = twin_personalities(root / "personalities", BASES)
    with testing.running_cloud(names, root / "cloud") as cloud:
        yield cloud


def unique_source(directory: Path, marker: str, tail_mib: int = 0) -> Path:
    """The tiny image with a marker (a build nobody published yet), optionally grown by
    ``tail_mib`` MiB of random data so that converting and uploading it take a while."""
    source = directory / "source.raw"
    source.write_bytes(tiny_source().read_bytes())
    with open(source, "r+b") as f:
        f.seek(21 << 20)
        f.write(marker.encode())
        f.seek(0, os.SEEK_END)
        for _ in range(tail_mib):
            f.write(os.urandom(1 << 20))
    return source


def pipeline_for(lc, root: Path, cloud: str, source: Path | None, **extra) -> Pipeline:
    config = write_pipeline_yaml(root, source or tiny_source(), extra=extra or None)
    return Pipeline(config, clouds_yaml_with_profiles(lc, [cloud], root / "clouds.yaml"),
                    root / "work")


def log_has(path: Path, text: str):
    return lambda: path.is_file() and text in path.read_text(errors="replace")


def partial(work: Path, pattern: str):
    return lambda: any(work.glob(pattern))


def fired(lc, fault_id: str):
    return lambda: any(f["id"] == fault_id and f["fired"] for f in lc.faults())


def our_qemus(work: Path) -> list[str]:
    """qemu processes whose command line mentions this work directory."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(str(work).encode() in a for a in argv):
            found.append(cmdline.parent.name)
    return found


def once_each(pipeline: Pipeline) -> dict[str, int]:
    counts = collections.Counter(e["task_id"] for e in pipeline.ledger())
    return {task: n for task, n in counts.items() if n > 1}


# stage -> (cloud, tail MiB, fault to hold the stage or None, what says we are inside it);
# lane A uses hp-like and rackspace-like, lane B hp-like-2 (and a local cloud of its own).
STAGES = {
    "build": ("hp-like", 0, None, lambda p, lc, f: Path(p.work.parent / "dib-started").exists),
    "convert": ("hp-like-2", 384, None,
                lambda p, lc, f: partial(p.work, "images/*/*luigi-tmp*")),
    "local_boot": ("hp-like", 0, None,
                   lambda p, lc, f: partial(p.work, "localboot/*/logs/*-console.log")),
    "upload": ("hp-like-2", 0, dict(kind="delay", seconds=4, service="image", method="POST"),
               lambda p, lc, f: fired(lc, f)),
    "task_import": ("rackspace-like", 0, dict(kind="delay", seconds=60, service="image",
                                              method="GET", path="/tasks/", times=None),
                    lambda p, lc, f: fired(lc, f)),
    "cloud_boot": ("hp-like-2", 0, dict(kind="slow_build", seconds=60),
                   lambda p, lc, f: fired(lc, f)),
    "reachability": ("hp-like", 0, None,
                     lambda p, lc, f: log_has(p.work.parent / "pipeline.out", "; checking ")),
}


LOCAL_CLOUD = "local cloud"
LANES = [["build", "local_boot", "reachability", "task_import"],
         ["convert", "upload", "cloud_boot", LOCAL_CLOUD]]


@pytest.fixture(scope="module")
def outcomes(lc, tmp_path_factory) -> dict[str, tuple[BaseException | None, Leaks]]:
    """Every scenario, two lanes at once: scenario -> (its failure or None, its leaks)."""
    def one(scenario: str):
        found = Leaks()
        root = tmp_path_factory.mktemp(scenario.replace(" ", "-"))
        try:
            if scenario == LOCAL_CLOUD:
                local_cloud_killed_mid_upload(root, found)
            else:
                kill_inside(scenario, lc, root, found)
        except BaseException as e:      # noqa: BLE001 - re-raised by the scenario's test
            return e, found
        return None, found

    def lane(scenarios: list[str]):
        return {scenario: one(scenario) for scenario in scenarios}
    with ThreadPoolExecutor(len(LANES)) as pool:
        results = {}
        for done in pool.map(lane, LANES):
            results.update(done)
    return results


def outcome_of(outcomes, scenario: str, leaks) -> None:
    failure, found = outcomes[scenario]
    leaks.total += found.total
    leaks.details += found.details
    if failure is not None:
        raise failure


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_inside_a_stage_the_rerun_completes(stage, outcomes, leaks):
    outcome_of(outcomes, stage, leaks)


def test_the_local_cloud_killed_mid_upload_then_restarted(outcomes, leaks):
    outcome_of(outcomes, LOCAL_CLOUD, leaks)


def kill_inside(stage: str, lc, tmp_path: Path, leaks: Leaks) -> None:
    cloud, tail, fault, inside = STAGES[stage]
    extra = {}
    env = {}
    source = unique_source(tmp_path, f"kill-{stage}", tail)
    if stage == "build":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        marker = tmp_path / "dib-started"
        script = bindir / "disk-image-create"
        script.write_text(FAKE_DIB.format(marker=marker, tiny=source))
        script.chmod(0o755)
        env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
        source = None               # a diskimage-builder build, with the stand-in
        extra = {"image": {"name": "tinyfleet", "elements": ["vm", "imagefleet-base"]}}
    pipeline = pipeline_for(lc, tmp_path, cloud, source, **extra)
    pipeline.env = env
    fault_id = lc.add_fault(cloud, **fault)["id"] if fault else None

    run = pipeline.start("--workers", "2")
    try:
        wait_for(inside(pipeline, lc, fault_id), 180, f"the run to be inside {stage}",
                 interval=0.02, process=run)
    finally:
        kill_group(run)
        lc.clear_faults(cloud)
    killed_at = time.time()
    before = pipeline.ledger()
    # qemu dies with the run (SIGKILL of the group, or its parent-death signal): allow
    # it the moment a loaded machine takes to deliver the signal and let qemu exit
    wait_for(lambda: not our_qemus(pipeline.work), 15, "local qemus to die with the run")

    if stage == "build":
        (tmp_path / "dib-started.rerun").touch()
    if stage == "upload":
        time.sleep(5)       # the cloud finishes the request the dead client started
    result = pipeline.run("--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert once_each(pipeline) == {}, "a finished stage was redone"
    assert pipeline.tasks_run(since=killed_at)      # the rest did run
    assert {e["task_id"] for e in before}.isdisjoint(
        e["task_id"] for e in pipeline.ledger(since=killed_at))

    name = f"tinyfleet-{pipeline.report()['build_id']}"
    images = [i for i in our_images(lc, cloud) if i["name"] == name]
    assert len(images) == 1 and images[0]["status"] == "active", images
    cleanup = pipeline.run(command="cleanup", date=None)
    assert cleanup.returncode == 0, cleanup.stderr
    leaks.count(lc, cloud)
    leaks.add("local qemu", len(our_qemus(pipeline.work)))
    tmp = pipeline.work / "tmp"
    leaks.add("mounts", len(buildcleanup.mounts_under(tmp)) if tmp.exists() else 0)
    leaks.add("loop devices", len(buildcleanup.loops_backed_under(tmp)) if tmp.exists() else 0)
    leaks.add("partial files", len(list(pipeline.work.rglob("*luigi-tmp*"))))
    assert leaks.total == 0, leaks.details


def local_cloud_killed_mid_upload(tmp_path: Path, leaks: Leaks) -> None:
    with testing.running_cloud(["hp-like"], tmp_path / "lc") as cloud:
        pipeline = pipeline_for(cloud, tmp_path, "hp-like", unique_source(tmp_path, "lc-kill"))
        fault_id = cloud.add_fault("hp-like", kind="delay", seconds=60, service="image",
                                   method="POST")["id"]
        run = pipeline.start("--workers", "2")
        wait_for(fired(cloud, fault_id), 120, "the upload to reach the cloud", process=run)
        cloud.process.kill()                              # the cloud dies mid-upload
        cloud.process.wait()
        run.wait(timeout=300)
        assert run.returncode != 0
    with testing.running_cloud(["hp-like"], tmp_path / "lc") as cloud:   # back, same data
        result = pipeline.run("--workers", "2")
        assert result.returncode == 0, result.stderr[-3000:]
        images = our_images(cloud, "hp-like")
        assert len(images) == 1 and images[0]["status"] == "active", images
        leaks.count(cloud, "hp-like")
        assert leaks.total == 0, leaks.details


def test_two_runs_of_the_same_date_do_not_upload_twice(lc, outcomes, tmp_path, leaks):
    # after the lanes (``outcomes``): alone on hp-like
    pipeline = pipeline_for(lc, tmp_path, "hp-like", unique_source(tmp_path, "concurrent"))
    earlier = {i["id"] for i in our_images(lc, "hp-like")}
    first, second = (subprocess.Popen(pipeline.argv("run", "--date", "2026-11-23"),
                                      cwd=Path(__file__).resolve().parents[2],
                                      env=pipeline._env(None), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2))
    results = [(p, *p.communicate(timeout=600)) for p in (first, second)]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes in ([0, 0], [0, 1]), [r[2][-1000:] for r in results]
    for process, _, err in results:
        if process.returncode:
            assert "another run holds" in err and err.count("imagefleet: ") == 1
    assert len([i for i in our_images(lc, "hp-like") if i["id"] not in earlier]) == 1
    assert [e["task"] for e in pipeline.ledger()].count("UploadImage") == 1
    leaks.count(lc, "hp-like")
    assert leaks.total == 0, leaks.details
