"""Discarding free space on a real ext4 disk image: dead blocks in, none out.

A 64 MiB MBR disk with one ext4 partition gets a 16 MiB file of random data,
deleted again on a mount without discard: its blocks stay allocated in the raw
file.  ``trim_and_measure`` finds them, discards them, and the raw file and a
qcow2 converted from it shrink by as much.  Needs root (loop devices, mount).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pipeline.image import freespace, qemu_img

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")

MIB = 2**20
START = MIB


def _run(*argv: str, **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


@pytest.fixture
def disk_with_dead_blocks(tmp_path):
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(64 * MIB)
    _run("sfdisk", "--quiet", str(disk), input="start=2048, type=83\n")
    dev = _run("losetup", "--find", "--show", "--offset", str(START), "--sizelimit",
               str(63 * MIB), str(disk)).strip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        _run("mkfs.ext4", "-q", "-b", "4096", "-E", "nodiscard", dev)   # as DIB makes it
        _run("mount", "-o", "nodiscard", dev, str(mnt))
        try:
            with open(mnt / "scratch", "wb") as f:
                f.write(os.urandom(16 * MIB))
            (mnt / "kept").write_text("the image's content\n")
            os.sync()
            (mnt / "scratch").unlink()
            os.sync()
        finally:
            _run("umount", str(mnt))
    finally:
        _run("losetup", "--detach", dev)
    return disk


def test_trim_discards_the_deleted_files_blocks(disk_with_dead_blocks, tmp_path):
    disk = disk_with_dead_blocks
    before_qcow2 = tmp_path / "before.qcow2"
    qemu_img.convert(disk, "raw", before_qcow2, "qcow2")
    assert freespace.measure_dead(disk) >= 15 * MIB

    log = tmp_path / "build.log"
    record = freespace.trim_and_measure(disk, log_path=log)

    assert record["dead_before"] >= 15 * MIB and record["dead_after"] == 0
    assert freespace.measure_dead(disk) == 0
    assert record["allocated_before"] - record["allocated_after"] >= 15 * MIB
    after_qcow2 = tmp_path / "after.qcow2"
    qemu_img.convert(disk, "raw", after_qcow2, "qcow2")
    assert before_qcow2.stat().st_size - after_qcow2.stat().st_size >= 15 * MIB
    assert qemu_img.compare(before_qcow2, "qcow2", disk, "raw") is False   # free space now zero
    assert "where the space goes" in log.read_text()
    assert record["du"][0]["path"] == "/"
