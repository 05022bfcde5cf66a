"""Issue 3's acceptance on a real build: every format right, same content, no rework."""

from __future__ import annotations

import pytest

from pipeline.core import runner
from pipeline.image import qemu_img, vhd
from tests.built_image import FORMATS, run_build

pytestmark = pytest.mark.slow

QEMU = {"qcow2": "qcow2", "raw": "raw", "vhd": "vpc"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_right_and_reads_like_the_base(base_image, fmt):
    path = base_image.images[fmt]
    assert qemu_img.info(path)["format"] == QEMU[fmt]
    assert qemu_img.compare(base_image.path, "raw", path, QEMU[fmt])


def test_vhd_is_dynamic_xenserver_style_and_read_by_libvhdi(base_image):
    path = base_image.images["vhd"]
    footer = vhd.check_vhd(path)
    assert footer.creator_app == b"tap\0" and footer.disk_type == 3
    out = runner.run(["vhdiinfo", str(path)], capture=True).stdout
    assert "Dynamic" in out


def test_second_build_does_no_work(base_image):
    before = {fmt: p.stat().st_mtime_ns for fmt, p in base_image.images.items()}
    base_mtime = base_image.path.stat().st_mtime_ns
    result, seconds = run_build(base_image.work_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"\nsecond imagefleet build took {seconds:.1f} s")
    assert {fmt: p.stat().st_mtime_ns for fmt, p in base_image.images.items()} == before
    assert base_image.path.stat().st_mtime_ns == base_mtime
