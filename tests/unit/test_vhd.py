"""The VHD writer, field by field against the VHD spec and blktap's vhd-util layout."""

from __future__ import annotations

import os
import struct
import time
import uuid

import pytest

from pipeline.core.errors import ConvertError, DiskFullError, ImageCorruptError
from pipeline.image import vhd_format as fmt
from pipeline.image.vhd import (
    check_vhd,
    read_bat,
    read_batmap,
    read_dynamic_header,
    read_footer,
    read_footer_copy,
    write_vhd,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
BLOCK = 2 * MiB

# Block 0: hole; 1: random data; 2: written zeros; 3: hole; 4: a few bytes; 5: hole.
DATA_BLOCKS = {1: os.urandom(BLOCK), 2: bytes(BLOCK), 4: b"\0" * 4000 + b"boot" * 25}
SPARSE_SIZE = 6 * BLOCK


def make_raw(path, size: int, blocks: dict[int, bytes]) -> str:
    """A sparse raw file of ``size`` bytes with ``blocks`` written at block offsets."""
    with open(path, "wb") as f:
        f.truncate(size)
        for index, data in blocks.items():
            f.seek(index * BLOCK)
            f.write(data)
    return str(path)


def spec_checksum(raw: bytes, field_at: int) -> int:
    """The spec's checksum, spelled out independently of the code under test."""
    zeroed = raw[:field_at] + b"\0\0\0\0" + raw[field_at + 4:]
    total = 0
    for byte in zeroed:
        total += byte
    return (~total) & 0xFFFFFFFF


@pytest.fixture(scope="module")
def sparse_vhd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vhd")
    src = make_raw(tmp / "disk.raw", SPARSE_SIZE, DATA_BLOCKS)
    before = int(time.time())
    info = write_vhd(src, tmp / "disk.vhd")
    after = int(time.time())
    return {"src": src, "vhd": str(tmp / "disk.vhd"), "info": info,
            "window": (before, after)}


# --- footer ------------------------------------------------------------------

@pytest.mark.parametrize("field, expected", [
    ("cookie", b"conectix"),
    ("features", 0x00000002),
    ("version", 0x00010000),
    ("data_offset", 512),
    ("creator_app", b"tap\0"),
    ("creator_version", 0x00010003),
    ("creator_host_os", 0x00000000),
    ("original_size", SPARSE_SIZE),
    ("current_size", SPARSE_SIZE),
    ("disk_type", 3),
    ("saved_state", 0),
    ("hidden", 0),
])
def test_footer_field(sparse_vhd, field, expected):
    assert getattr(read_footer(sparse_vhd["vhd"]), field) == expected


def test_footer_raw_offsets(sparse_vhd):
    with open(sparse_vhd["vhd"], "rb") as f:
        f.seek(-512, os.SEEK_END)
        raw = f.read()
    assert raw[0:8] == b"conectix"
    assert raw[28:32] == b"tap\0"
    assert struct.unpack(">I", raw[60:64])[0] == 3
    assert raw[86:] == bytes(426)


def test_footer_checksum_is_ones_complement_of_byte_sum(sparse_vhd):
    with open(sparse_vhd["vhd"], "rb") as f:
        f.seek(-512, os.SEEK_END)
        raw = f.read()
    assert struct.unpack(">I", raw[64:68])[0] == spec_checksum(raw, 64)


def test_footer_timestamp_counts_seconds_since_2000(sparse_vhd):
    before, after = sparse_vhd["window"]
    stamp = read_footer(sparse_vhd["vhd"]).timestamp
    assert before - 946684800 <= stamp <= after - 946684800


def test_footer_unique_id_is_a_fresh_uuid4(sparse_vhd, tmp_path):
    first = read_footer(sparse_vhd["vhd"]).unique_id
    second = write_vhd(sparse_vhd["src"], tmp_path / "again.vhd").unique_id
    assert first.version == 4 and first != second
    assert first == sparse_vhd["info"].unique_id


def test_footer_copy_at_offset_0_equals_trailer(sparse_vhd):
    with open(sparse_vhd["vhd"], "rb") as f:
        head = f.read(512)
        f.seek(-512, os.SEEK_END)
        tail = f.read()
    assert head == tail
    assert read_footer_copy(sparse_vhd["vhd"]) == read_footer(sparse_vhd["vhd"])


@pytest.mark.parametrize("total_sectors, chs", [
    (4096, (60, 4, 17)),                    # 2 MiB: 17 spt, at least 4 heads
    (20480, (301, 4, 17)),                  # 10 MiB
    (204800, (1003, 12, 17)),               # 100 MiB: heads grow with size
    (409600, (825, 16, 31)),                # 200 MiB: too many heads, 31 spt
    (1024000, (1015, 16, 63)),              # 500 MiB: 63 spt
    (2097152, (2080, 16, 63)),              # 1 GiB
    (65535 * 16 * 63 - 1, (65534, 16, 63)),  # last size with 63 spt
    (65535 * 16 * 63, (16191, 16, 255)),    # ~31.5 GiB: switch to 255 spt
    (83886080, (20560, 16, 255)),           # 40 GiB
    (266338304, (65278, 16, 255)),          # 127 GiB
    (65535 * 16 * 255, (65535, 16, 255)),   # the CHS maximum, ~127.5 GiB
    (419430400, (65535, 16, 255)),          # 200 GiB: capped
    (4278190080, (65535, 16, 255)),         # 2040 GiB: capped
])
def test_chs_geometry_follows_the_spec(total_sectors, chs):
    assert fmt.chs_geometry(total_sectors) == chs


def test_footer_geometry_is_computed_from_the_virtual_size(sparse_vhd):
    footer = read_footer(sparse_vhd["vhd"])
    assert footer.geometry == fmt.chs_geometry(SPARSE_SIZE // 512) == (361, 4, 17)
    assert sparse_vhd["info"].geometry == footer.geometry


@pytest.mark.parametrize("source_size, virtual_size", [
    (512, BLOCK),
    (BLOCK, BLOCK),
    (BLOCK + 1, 2 * BLOCK),
    (7 * MiB + 4096 + 3 * 512, 8 * MiB),
    (GiB, GiB),
    (GiB + 512, GiB + BLOCK),
])
def test_virtual_size_rounds_up_to_whole_blocks(source_size, virtual_size):
    assert fmt.virtual_size_for(source_size) == virtual_size
    assert fmt.plan_layout(source_size).max_table_entries == virtual_size // BLOCK


def test_unaligned_source_keeps_its_tail_and_pads_with_zeros(tmp_path):
    size = 3 * BLOCK + 4096 + 700
    tail = os.urandom(700)
    src = tmp_path / "odd.raw"
    with open(src, "wb") as f:
        f.truncate(size)
        f.seek(size - 700)
        f.write(tail)
    info = write_vhd(src, tmp_path / "odd.vhd")
    assert (info.source_size, info.virtual_size) == (size, 4 * BLOCK)
    sector = read_bat(tmp_path / "odd.vhd")[3]
    with open(tmp_path / "odd.vhd", "rb") as f:
        f.seek(sector * 512 + 512)
        data = f.read(BLOCK)
    assert data[4096:4096 + 700] == tail and data[4796:] == bytes(BLOCK - 4796)


# --- dynamic header ------------------------------------------------------------

@pytest.mark.parametrize("field, expected", [
    ("cookie", b"cxsparse"),
    ("data_offset", 0xFFFFFFFFFFFFFFFF),
    ("table_offset", 1536),
    ("version", 0x00010000),
    ("max_table_entries", SPARSE_SIZE // BLOCK),
    ("block_size", BLOCK),
    ("parent_unique_id", uuid.UUID(int=0)),
    ("parent_timestamp", 0),
    ("parent_name", bytes(512)),
    ("parent_locators", bytes(192)),
])
def test_dynamic_header_field(sparse_vhd, field, expected):
    assert getattr(read_dynamic_header(sparse_vhd["vhd"]), field) == expected


def test_dynamic_header_checksum(sparse_vhd):
    with open(sparse_vhd["vhd"], "rb") as f:
        f.seek(512)
        raw = f.read(1024)
    assert struct.unpack(">I", raw[36:40])[0] == spec_checksum(raw, 36)


# --- BAT and data blocks --------------------------------------------------------

def test_bat_leaves_holes_and_zero_blocks_unallocated(sparse_vhd):
    bat = read_bat(sparse_vhd["vhd"])
    unused = [i for i, sector in enumerate(bat) if sector == 0xFFFFFFFF]
    assert unused == [0, 2, 3, 5]
    assert sparse_vhd["info"].blocks_allocated == 2


def test_bat_is_padded_to_a_sector_with_zeros_like_vhd_util(sparse_vhd):
    with open(sparse_vhd["vhd"], "rb") as f:
        f.seek(1536)
        raw = f.read(512)
    assert raw[6 * 4:] == bytes(512 - 6 * 4)


def test_allocated_blocks_hold_a_full_bitmap_then_the_source_data(sparse_vhd):
    bat = read_bat(sparse_vhd["vhd"])
    with open(sparse_vhd["vhd"], "rb") as vhd, open(sparse_vhd["src"], "rb") as src:
        for block in (1, 4):
            vhd.seek(bat[block] * 512)
            assert vhd.read(512) == b"\xff" * 512
            src.seek(block * BLOCK)
            assert vhd.read(BLOCK) == src.read(BLOCK)


def test_block_data_starts_on_a_page_boundary_like_blktap(sparse_vhd):
    bat = read_bat(sparse_vhd["vhd"])
    layout = fmt.plan_layout(SPARSE_SIZE)
    assert bat[1] == layout.block_sector(layout.headers_end)
    assert [(bat[b] + 1) % 8 for b in (1, 4)] == [0, 0]
    assert bat[4] > bat[1] + 4096


def test_file_ends_with_the_footer_right_after_the_last_block(sparse_vhd):
    last = max(s for s in read_bat(sparse_vhd["vhd"]) if s != 0xFFFFFFFF)
    expected = last * 512 + 512 + BLOCK + 512
    assert os.path.getsize(sparse_vhd["vhd"]) == expected == sparse_vhd["info"].file_size


def test_all_hole_source_has_no_blocks(tmp_path):
    src = make_raw(tmp_path / "empty.raw", 4 * BLOCK, {})
    info = write_vhd(src, tmp_path / "empty.vhd")
    assert read_bat(tmp_path / "empty.vhd") == [0xFFFFFFFF] * 4
    assert info.file_size == fmt.plan_layout(4 * BLOCK).headers_end + 512
    check_vhd(tmp_path / "empty.vhd")


# --- batmap --------------------------------------------------------------------

def test_batmap_sits_after_the_padded_bat(sparse_vhd):
    batmap = read_batmap(sparse_vhd["vhd"])
    with open(sparse_vhd["vhd"], "rb") as f:
        f.seek(1536 + 512)
        assert f.read(8) == b"tdbatmap"
    assert batmap.batmap_offset == 1536 + 512 + 512


@pytest.mark.parametrize("field, expected", [
    ("cookie", b"tdbatmap"),
    ("batmap_sectors", 1),
    ("version", 0x00010002),
    ("marker", 0),
])
def test_batmap_header_field(sparse_vhd, field, expected):
    assert getattr(read_batmap(sparse_vhd["vhd"]), field) == expected


def test_batmap_bits_mark_the_written_blocks(sparse_vhd):
    batmap = read_batmap(sparse_vhd["vhd"])
    assert [b for b in range(6) if batmap.is_set(b)] == [1, 4]
    assert batmap.bitmap[0] == 0b0100_1000
    assert batmap.bitmap[1:] == bytes(511)


def test_batmap_checksum_is_ones_complement_of_the_map(sparse_vhd):
    batmap = read_batmap(sparse_vhd["vhd"])
    assert batmap.checksum == (~sum(batmap.bitmap[:512])) & 0xFFFFFFFF


@pytest.mark.parametrize("blocks, batmap_sectors, checksummed", [
    (1, 1, 512),
    (4096, 1, 512),
    (4100, 2, 512),      # vhd-util checksums curr_size >> 24 bytes, rounded to sectors
    (8192, 2, 1024),
])
def test_batmap_size_and_checksum_span_follow_vhd_util(blocks, batmap_sectors, checksummed):
    layout = fmt.plan_layout(blocks * BLOCK)
    assert (layout.batmap_sectors, layout.batmap_checksum_bytes) == (batmap_sectors, checksummed)
    assert layout.batmap_header_offset == 1536 + fmt.sectors(blocks * 4) * 512


# --- check_vhd -----------------------------------------------------------------

@pytest.mark.parametrize("offset_from, offset, message", [
    ("end", -512 + 70, "footer checksum"),
    ("end", -512 + 1, "footer cookie"),
    ("start", 10, "footer copy"),
    ("start", 512 + 100, "dynamic header checksum"),
    ("start", 1536 + 512 + 20, "batmap version"),
    ("start", 1536 + 512 + 512, "batmap checksum"),
])
def test_check_vhd_finds_damage(sparse_vhd, tmp_path, offset_from, offset, message):
    damaged = tmp_path / "damaged.vhd"
    damaged.write_bytes(open(sparse_vhd["vhd"], "rb").read())
    with open(damaged, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset_from == "end" else os.SEEK_SET)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x55]))
    with pytest.raises(ImageCorruptError, match=message) as exc:
        check_vhd(damaged)
    assert str(damaged) in str(exc.value)


def test_check_vhd_finds_truncation(sparse_vhd, tmp_path):
    cut = tmp_path / "cut.vhd"
    cut.write_bytes(open(sparse_vhd["vhd"], "rb").read()[:-BLOCK])
    with pytest.raises(ImageCorruptError):
        check_vhd(cut)


def test_check_vhd_accepts_a_good_file(sparse_vhd):
    assert check_vhd(sparse_vhd["vhd"]).disk_type == 3


# --- errors and progress -----------------------------------------------------------

def test_missing_source_is_a_convert_error(tmp_path):
    with pytest.raises(ConvertError, match="cannot open source") as exc:
        write_vhd(tmp_path / "nope.raw", tmp_path / "out.vhd")
    assert isinstance(exc.value.__cause__, OSError)
    assert str(exc.value).startswith(f"{tmp_path / 'nope.raw'}: convert: ")


def test_unwritable_destination_is_a_convert_error(tmp_path):
    src = make_raw(tmp_path / "a.raw", BLOCK, {0: b"x"})
    with pytest.raises(ConvertError, match="cannot create") as exc:
        write_vhd(src, tmp_path / "no-such-dir" / "out.vhd")
    assert isinstance(exc.value.__cause__, FileNotFoundError)


def test_empty_source_is_a_convert_error(tmp_path):
    src = make_raw(tmp_path / "zero.raw", 0, {})
    with pytest.raises(ConvertError, match="empty"):
        write_vhd(src, tmp_path / "out.vhd")


def test_progress_runs_up_to_the_source_size(sparse_vhd, tmp_path):
    seen = []
    write_vhd(sparse_vhd["src"], tmp_path / "p.vhd", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (SPARSE_SIZE, SPARSE_SIZE)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("block_size", [0, 1000, 2048, 4 * MiB])
def test_block_size_must_be_a_power_of_two_vhd_util_can_read(tmp_path, block_size):
    src = make_raw(tmp_path / "a.raw", BLOCK, {0: b"x"})
    with pytest.raises(ValueError, match="block size"):
        write_vhd(src, tmp_path / "out.vhd", block_size=block_size)


def test_a_failed_write_is_a_convert_error(sparse_vhd, tmp_path, monkeypatch):
    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwritev", disk_full)
    with pytest.raises(DiskFullError, match="cannot write .No space left") as exc:
        write_vhd(sparse_vhd["src"], tmp_path / "full.vhd")
    assert isinstance(exc.value.__cause__, OSError)


def test_without_seek_data_every_block_is_read(sparse_vhd, tmp_path, monkeypatch):
    real_lseek = os.lseek

    def no_sparse_support(fd, offset, whence):
        if whence in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(22, "Invalid argument")
        return real_lseek(fd, offset, whence)

    monkeypatch.setattr(os, "lseek", no_sparse_support)
    write_vhd(sparse_vhd["src"], tmp_path / "dense.vhd")
    assert read_bat(tmp_path / "dense.vhd") == read_bat(sparse_vhd["vhd"])


def test_check_vhd_on_a_missing_file_is_a_pipeline_error(tmp_path):
    with pytest.raises(ImageCorruptError, match="cannot read"):
        check_vhd(tmp_path / "missing.vhd")
