"""report.html in real headless Chromium: a screenshot a person can look at and one
row per cloud, the failed one showing its error."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pipeline.run.report import CloudRow, cloud_row, make_report, write_report
from tests.browser import (
    ARTIFACTS,
    WINDOW,
    check_report_in_browser,
    chromium_binary,
    cloud_rows,
    png_size,
)

pytestmark = pytest.mark.skipif(chromium_binary() is None,
                                reason="chromium is not installed (make setup installs it)")

BUILD_ID = "20261123-0412-9f3c2e1"
ERROR = "imagefleet: hp-like: upload: Glance v1 returned 413 (image too large for quota)"


def verify(address: str, source: str, active: float, reachable: float) -> dict:
    return {"address": address, "address_source": source, "seconds_to_active": active,
            "seconds_to_reachable": reachable, "build_id": BUILD_ID}


def done(cloud: str, profile: str, disk_format: str, mechanism: str, size: int,
         seconds: float, checked: dict) -> CloudRow:
    upload = {"mechanism": mechanism, "image_id": f"{cloud}-7d41c2", "bytes": size,
              "seconds": seconds, "skipped": False}
    return cloud_row(cloud, profile, disk_format, build={}, convert={}, local_boot={},
                     upload=upload, verify=checked, error=None, failed_stage=None)


def test_report_renders_a_row_per_cloud(tmp_path):
    rows = [
        done("rax", "rackspace-like", "vhd", "task", 812 * 2**20, 38.2,
             verify("127.100.0.5", "public", 21.4, 63.0)),
        done("dreamhost", "dreamhost-like", "raw", "put", 2048 * 2**20, 71.9,
             verify("127.100.0.9", "floating", 9.8, 34.5)),
        done("vexxhost", "vexxhost-like", "qcow2", "put", 391 * 2**20, 12.6,
             verify("127.100.0.12", "fixed", 6.1, 28.7)),
        cloud_row("hp", "hp-like", "qcow2", build={}, convert={}, local_boot={}, upload=None,
                  verify=None, error=ERROR, failed_stage="upload"),
    ]
    run_dir = tmp_path / "reports" / "2026-11-23T04:12"
    write_report(run_dir, make_report("2026-11-23T04:12", BUILD_ID, rows,
                                      started=time.time() - 900, tasks_run={"UploadImage": 4}))

    started = time.monotonic()
    statuses = check_report_in_browser(run_dir, ["rax", "dreamhost", "vexxhost", "hp"],
                                       "report")
    print(f"\nchromium: screenshot + DOM in {time.monotonic() - started:.1f} s")

    assert statuses == {"dreamhost": "done", "hp": "failed", "rax": "done", "vexxhost": "done"}
    png = Path(shutil.copy(ARTIFACTS / "report.png", tmp_path))
    dom = Path(shutil.copy(ARTIFACTS / "report.dom.html", tmp_path))
    assert png_size(png) == WINDOW
    failed = [r for r in cloud_rows(dom.read_text()) if r["status"] == "failed"]
    assert [(r["cloud"], r["error"]) for r in failed] == [("hp", ERROR)]
