"""A real base image, built and converted once per test session by the real CLI
(the slow tier's fixture; tests/conftest.py makes it visible everywhere).

``imagefleet build --format qcow2 --format raw --format vhd`` runs
diskimage-builder, qemu-img and the VHD writer exactly as a user would.  Set
IMAGEFLEET_E2E_WORK to a directory to keep DIB's cache and the outputs between
runs; an unchanged build digest is then found complete and not rebuilt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent

FORMATS = ("qcow2", "raw", "vhd")


class BuiltImage(NamedTuple):
    path: Path              # the raw base image
    build_id: str
    work_dir: Path
    log_path: Path
    images: dict[str, Path]  # disk format -> converted file
    seconds: float


def run_build(work: Path) -> tuple[subprocess.CompletedProcess, float]:
    argv = [sys.executable, "-m", "tasks.cli", "build", "--work-dir", str(work),
            "--config", str(REPO / "config" / "pipeline.yaml")]
    for fmt in FORMATS:
        argv += ["--format", fmt]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=3600,
                            check=False)
    return result, time.monotonic() - started


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> BuiltImage:
    configured = os.environ.get("IMAGEFLEET_E2E_WORK")
    work = Path(configured) if configured else tmp_path_factory.mktemp("e2e-work")
    result, seconds = run_build(work)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"\nimagefleet build took {seconds:.0f} s")
    paths = [Path(line) for line in result.stdout.split()]
    images = {p.suffix.lstrip("."): p for p in paths}
    build_dir = paths[0].parent.parent.parent / "builds" / paths[0].parent.name
    record = json.loads((build_dir / "build.json").read_text())
    return BuiltImage(build_dir / "base.raw", record["build_id"], work, Path(record["log"]),
                      images, seconds)
