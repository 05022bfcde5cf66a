"""Real qemu-img: conversions keep content, check catches damage."""

from __future__ import annotations

import os

import pytest

from pipeline.core.errors import ImageCorruptError
from pipeline.image import qemu_img
from pipeline.image.convert import convert_image

MiB = 1024 * 1024


@pytest.fixture
def sparse_raw(tmp_path):
    """64 MiB raw with data in a few places and holes elsewhere."""
    path = tmp_path / "base.raw"
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
        for offset in (0, 5 * MiB + 123, 40 * MiB, 64 * MiB - 4096):
            f.seek(offset)
            f.write(os.urandom(4096))
    return path


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_convert_keeps_content(sparse_raw, tmp_path, disk_format):
    dest = tmp_path / f"out.{disk_format}"
    seen = []
    record = convert_image(sparse_raw, dest, disk_format, progress=seen.append)
    assert qemu_img.info(dest)["format"] == disk_format
    assert qemu_img.compare(sparse_raw, "raw", dest, disk_format)
    assert record["virtual_size"] == 64 * MiB
    assert seen and seen[-1] == pytest.approx(100.0)
    # sparse-aware: the output does not allocate the holes
    assert os.stat(dest).st_blocks * 512 < 8 * MiB


def test_compare_sees_a_difference(sparse_raw, tmp_path):
    other = tmp_path / "other.raw"
    qemu_img.convert(sparse_raw, "raw", other, "raw")
    with open(other, "r+b") as f:
        f.seek(20 * MiB)
        f.write(b"x")
    assert not qemu_img.compare(sparse_raw, "raw", other, "raw")


def test_check_catches_a_damaged_qcow2(sparse_raw, tmp_path):
    dest = tmp_path / "out.qcow2"
    qemu_img.convert(sparse_raw, "raw", dest, "qcow2")
    assert qemu_img.check(dest, "qcow2").ok
    with open(dest, "r+b") as f:  # clobber the L1/refcount tables after the header
        f.seek(0x10000)
        f.write(b"\xff" * 0x20000)
    with pytest.raises(ImageCorruptError):
        qemu_img.check(dest, "qcow2")


def test_truncated_qcow2_is_caught(sparse_raw, tmp_path):
    dest = tmp_path / "out.qcow2"
    qemu_img.convert(sparse_raw, "raw", dest, "qcow2")
    os.truncate(dest, 1000)
    with pytest.raises(ImageCorruptError):
        qemu_img.check(dest, "qcow2")
