"""Load: twelve clouds (two of each vendor personality) in one ``imagefleet run``.

The local cloud serves every shipped personality twice (the copy named
``<name>-2``, published with the same vendor profile), so one run converts
three formats and uploads and test-boots twelve times, with the shipped
``[resources]`` caps (two local qemu boots at once, one upload and one test
boot per cloud) and the local cloud's two boot slots.  One copy refuses the
upload with a 413 on purpose.  While it runs, a sampler reads /proc every half
second: the memory (PSS) of everything the run and the local cloud started,
the machine's MemAvailable, and how many local-boot qemu processes exist.

The test shows: every cloud ends DONE or with one clear line naming it; the
caps held (never more local boots than ``qemu`` allows); peak memory stays
well inside the machine; nothing leaked on any cloud.
"""

from __future__ import annotations

import configparser
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localcloud.testing import running_cloud
from tests.pipeline_run import (
    REPO,
    Pipeline,
    clouds_yaml_with_profiles,
    our_images,
    tiny_source,
    twin_personalities,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BASES = ["rackspace-like", "hp-like", "dreamhost-like", "vexxhost-like", "ovh-like",
         "auro-like"]
REFUSING = "dreamhost-like-2"          # answers the upload with 413, on purpose
MiB = 1 << 20
RUN_TIMEOUT = 900


def qemu_cap() -> int:
    """The shipped ``[resources] qemu``: how many local boots may run at once."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "config" / "luigi.cfg")
    return cfg.getint("resources", "qemu")


# --- sampling /proc ---------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(roots: list[int], tree: dict[int, list[int]]) -> list[int]:
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


@dataclass
class Sampler:
    """Peaks over the run: PSS of the run's and the cloud's trees, local qemus, free memory."""

    run_pid: int
    cloud_pid: int
    peak_run: int = 0
    peak_cloud: int = 0
    peak_total: int = 0
    peak_local_qemu: int = 0
    peak_cloud_qemu: int = 0
    least_available: int = 1 << 62
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        tree = _children()
        run = _descendants([self.run_pid], tree)
        cloud = _descendants([self.cloud_pid], tree)
        run_pss, cloud_pss = sum(map(_pss, run)), sum(map(_pss, cloud))
        self.peak_run = max(self.peak_run, run_pss)
        self.peak_cloud = max(self.peak_cloud, cloud_pss)
        self.peak_total = max(self.peak_total, run_pss + cloud_pss)
        self.peak_local_qemu = max(self.peak_local_qemu,
                                   sum(_comm(p).startswith("qemu-system") for p in run))
        self.peak_cloud_qemu = max(self.peak_cloud_qemu,
                                   sum(_comm(p).startswith("qemu-system") for p in cloud))
        self.least_available = min(self.least_available, _mem_available())
        self.samples += 1

    def loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self.loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_twelve_clouds_in_one_run(tmp_path, leaks):
    names = twin_personalities(tmp_path / "personalities", BASES)
    with running_cloud(names, tmp_path / "cloud") as lc:
        clouds = sorted(lc.clouds)
        assert len(clouds) == 12
        lc.add_fault(REFUSING, kind="status", status=413, service="image", method="PUT",
                     times=None, message="Image exceeds the storage quota")
        pipeline = Pipeline(write_pipeline_yaml(tmp_path, tiny_source(), name="loadfleet"),
                            clouds_yaml_with_profiles(lc, clouds, tmp_path / "clouds.yaml"),
                            tmp_path / "work")
        began = time.monotonic()
        process = pipeline.start("--workers", "12", log=tmp_path / "pipeline.out")
        with Sampler(process.pid, lc.process.pid) as sampler:
            try:
                process.wait(timeout=RUN_TIMEOUT)
            finally:
                if process.poll() is None:
                    process.kill()
        seconds = time.monotonic() - began
        output = (tmp_path / "pipeline.out").read_text(errors="replace")
        report = pipeline.report()
        total_memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        print(f"\n12 clouds: {seconds:.0f} s, exit {process.returncode}; peak PSS: run "
              f"{sampler.peak_run / MiB:.0f} MiB, local cloud and guests "
              f"{sampler.peak_cloud / MiB:.0f} MiB, together {sampler.peak_total / MiB:.0f} "
              f"MiB of {total_memory / MiB:.0f}; least MemAvailable "
              f"{sampler.least_available / MiB:.0f} MiB; qemu at once: local "
              f"{sampler.peak_local_qemu}, cloud {sampler.peak_cloud_qemu}; "
              f"{sampler.samples} samples")

        # Every cloud ends DONE, or with one line naming it (the one refusing on purpose).
        rows = {row["cloud"]: row for row in report["clouds"]}
        assert sorted(rows) == clouds
        assert report["failed"] == [REFUSING], report["failed"]
        for name, row in rows.items():
            if name == REFUSING:
                assert row["status"] == "failed" and "413" in row["error"], row
            else:
                assert row["status"] == "done", (name, row["error"])
        errors = [ln for ln in output.splitlines() if ln.startswith("imagefleet: ")]
        assert len(errors) == 1 and errors[0].startswith(f"imagefleet: {REFUSING}: upload: ")
        assert "413" in errors[0] and "Traceback" not in output
        assert process.returncode == 1

        # One build, one conversion per format, one upload per cloud that took it.
        counts = pipeline.tasks_run()
        assert counts.get("BuildBaseImage") == 1 and counts.get("ConvertImage") == 3, counts
        assert counts.get("UploadImage") == 11 and counts.get("VerifyImage") == 11, counts

        # The caps held, and memory stayed well inside the machine.
        assert sampler.samples >= 10
        assert 1 <= sampler.peak_local_qemu <= qemu_cap()
        assert sampler.peak_total < total_memory // 4
        assert sampler.least_available > total_memory // 4

        for name in clouds:
            leaks.count(lc, name)
            assert len(our_images(lc, name, "loadfleet")) == (0 if name == REFUSING else 1)
    assert leaks.total == 0, leaks.details
