"""A real diskimage-builder build of the base image (minutes when the cache is cold)."""

from __future__ import annotations

import pytest

from pipeline.image import buildcleanup, qemu_img
from pipeline.image.buildid import BUILD_ID_LEN

pytestmark = pytest.mark.slow


def test_base_image_is_a_raw_disk(base_image):
    assert base_image.path.is_file()
    info = qemu_img.info(base_image.path)
    assert info["format"] == "raw"
    assert info["virtual-size"] >= 1024**3
    assert len(base_image.build_id) == BUILD_ID_LEN
    assert base_image.log_path.is_file()


def test_build_leaves_no_mounts_or_loop_devices(base_image):
    assert buildcleanup.mounts_under(base_image.work_dir) == []
    assert buildcleanup.loops_backed_under(base_image.work_dir) == []
