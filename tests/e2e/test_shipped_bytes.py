"""Issue 19's acceptance on the one real build: what each format ships is near the floor.

The floor is the content's compressed size: zstd of the base image, whose free
space reads as zeros once discarded (so it is zstd of the used blocks).  A
qcow2 cloud gets at most 1.3 times that; a raw or VHD cloud gets no dead
blocks: no byte the raw file allocates lies in a free filesystem block, and
the VHD holds only the 2 MiB blocks in which the raw file has data.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from pipeline.image import freespace, qemu_img

pytestmark = pytest.mark.slow

MIB = 2**20
QCOW2_OVER_FLOOR = 1.3
VHD_BLOCK = 2 * MIB


@pytest.fixture(scope="module")
def floor(base_image) -> int:
    out = subprocess.run(["zstd", "-3", "-T0", "-c", str(base_image.path)], check=True,
                         capture_output=True).stdout
    return len(out)


@pytest.fixture(scope="module")
def space(base_image) -> dict:
    return json.loads((base_image.path.parent / "build.json").read_text())["space"]


def test_qcow2_ships_at_most_1_3_times_the_zstd_floor(base_image, floor):
    path = base_image.images["qcow2"]
    shipped = path.stat().st_size
    record = json.loads(path.with_name(path.name + ".json").read_text())
    print(f"\nqcow2 {shipped / MIB:.0f} MiB, zstd floor {floor / MIB:.0f} MiB, "
          f"ratio {shipped / floor:.2f}")
    assert record["compressed"] is True
    assert shipped <= QCOW2_OVER_FLOOR * floor
    qemu_img.check(path, "qcow2")


def test_build_log_says_where_the_space_goes(base_image, space):
    assert space["dead_after"] == 0
    assert space["du"][0]["path"] == "/" and space["du"][0]["bytes"] > 0
    assert "where the space goes" in base_image.log_path.read_text()


def test_raw_and_vhd_carry_no_dead_blocks(base_image, space):
    raw = base_image.images["raw"]
    assert freespace.measure_dead(raw) == 0
    # VHD stores whole 2 MiB blocks: exactly those of the raw file that hold data.
    blocks = {offset // VHD_BLOCK for start, end in freespace.data_extents(raw)
              for offset in range(start - start % VHD_BLOCK, end, VHD_BLOCK)}
    vhd = base_image.images["vhd"].stat().st_size
    allocated = freespace.allocated_bytes(raw)
    print(f"\nfiles use {space['fs_used'] / MIB:.0f} MiB; raw allocates {allocated / MIB:.0f} "
          f"MiB, vhd {vhd / MIB:.0f} MiB in {len(blocks)} blocks")
    assert vhd <= len(blocks) * (VHD_BLOCK + 4096) + MIB
