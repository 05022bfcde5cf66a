"""On-disk layout of a dynamic VHD as blktap's ``vhd-util`` writes it.

Pure data: struct layouts, checksums, CHS geometry and the placement rules, so
the writer (``pipeline.image.vhd``) and its tests share one description. Sources: the
Microsoft "Virtual Hard Disk Image Format Specification" (footer, dynamic
header, BAT, CHS algorithm) and blktap's ``vhd.h``/``libvhd.c`` (creator
"tap", the ``tdbatmap`` header and bitmap, block placement).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

SECTOR = 512
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z as a Unix timestamp

FOOTER_COOKIE = b"conectix"
FEATURES_RESERVED = 0x00000002  # the spec says this bit is always set
FILE_FORMAT_VERSION = 0x00010000
CREATOR_APP = b"tap\0"  # vhd-util / tapdisk; qemu then trusts current_size
CREATOR_VERSION = 0x00010003  # blktap VHD_CURRENT_VERSION (1.3): has a batmap, v1.2
CREATOR_HOST_OS = 0x00000000  # vhd-util writes zero here, not "Lnux" or "Wi2k"
DISK_TYPE_FIXED = 2
DISK_TYPE_DYNAMIC = 3

HEADER_COOKIE = b"cxsparse"
HEADER_VERSION = 0x00010000
NO_NEXT_STRUCTURE = 0xFFFFFFFFFFFFFFFF
BAT_UNUSED = 0xFFFFFFFF
DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024

BATMAP_COOKIE = b"tdbatmap"
BATMAP_VERSION = 0x00010002  # 1.2: checksum over unsigned bytes

# The largest disk qemu opens (VHD_MAX_SECTORS, 2040 GiB); CHS stops at ~127 GiB.
MAX_VIRTUAL_SIZE = 0xFF000000 * SECTOR
MAX_CHS_SECTORS = 65535 * 16 * 255
# blktap starts each block's data on a page boundary (its bitmap sits just before).
DATA_ALIGN_SECTORS = 4096 // SECTOR

FOOTER = struct.Struct(">8sIIQI4sIIQQHBBII16sBB426s")
HEADER = struct.Struct(">8sQQIIII16sII512s192s256s")
BATMAP_HEADER = struct.Struct(">8sQIIIB65s418s")
assert FOOTER.size == SECTOR and HEADER.size == 2 * SECTOR and BATMAP_HEADER.size == SECTOR

FOOTER_CHECKSUM_AT = 64
HEADER_CHECKSUM_AT = 36


def sectors(nbytes: int) -> int:
    """Whole sectors that hold ``nbytes``, never zero (blktap's secs_round_up_no_zero)."""
    return max(1, -(-nbytes // SECTOR))


def checksum(data: bytes, field_at: int | None = None) -> int:
    """Ones' complement of the byte sum, the checksum field (4 bytes at ``field_at``) as zero."""
    total = sum(data)
    if field_at is not None:
        total -= sum(data[field_at:field_at + 4])
    return ~total & 0xFFFFFFFF


def chs_geometry(total_sectors: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) by the spec's algorithm, capped near 127 GiB."""
    total_sectors = min(total_sectors, MAX_CHS_SECTORS)
    if total_sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cyl_heads = total_sectors // spt
    else:
        spt = 17
        cyl_heads = total_sectors // spt
        heads = max(4, (cyl_heads + 1023) // 1024)
        if cyl_heads >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cyl_heads = total_sectors // spt
        if cyl_heads >= heads * 1024:
            spt, heads = 63, 16
            cyl_heads = total_sectors // spt
    return cyl_heads // heads, heads, spt


def batmap_checksum_bytes(current_size: int) -> int:
    """How much of the batmap blktap checksums: it assumes 2 MiB blocks (curr_size >> 24)."""
    return sectors(current_size >> 24) * SECTOR


def virtual_size_for(source_size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> int:
    """Round up to whole blocks, as ``vhd-util`` does; qemu reads it back from current_size."""
    return -(-source_size // block_size) * block_size


@dataclass(frozen=True)
class Layout:
    """Where everything goes in the file; data blocks follow ``first_block_at``."""

    virtual_size: int
    block_size: int
    max_table_entries: int
    table_offset: int
    batmap_header_offset: int
    batmap_offset: int
    batmap_sectors: int
    headers_end: int

    @property
    def bitmap_size(self) -> int:
        return sectors(self.block_size // SECTOR // 8) * SECTOR

    @property
    def batmap_checksum_bytes(self) -> int:
        return batmap_checksum_bytes(self.virtual_size)

    def block_sector(self, end_of_data: int) -> int:
        """First sector of a block allocated at file offset ``end_of_data``, data page-aligned."""
        sector = -(-end_of_data // SECTOR)
        gap = -(sector + self.bitmap_size // SECTOR) % DATA_ALIGN_SECTORS
        return sector + gap


def plan_layout(source_size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> Layout:
    """Metadata placement as vhd-util creates it: footer copy, header, BAT, batmap."""
    virtual_size = virtual_size_for(source_size, block_size)
    entries = virtual_size // block_size
    table_offset = 3 * SECTOR
    batmap_header_offset = table_offset + sectors(entries * 4) * SECTOR
    batmap_offset = batmap_header_offset + SECTOR
    batmap_sectors = sectors((entries + 7) // 8)
    return Layout(virtual_size, block_size, entries, table_offset, batmap_header_offset,
                  batmap_offset, batmap_sectors, batmap_offset + batmap_sectors * SECTOR)


@dataclass(frozen=True)
class Footer:
    cookie: bytes
    features: int
    version: int
    data_offset: int
    timestamp: int
    creator_app: bytes
    creator_version: int
    creator_host_os: int
    original_size: int
    current_size: int
    cylinders: int
    heads: int
    sectors_per_track: int
    disk_type: int
    checksum: int
    unique_id: uuid.UUID
    saved_state: int
    hidden: int
    computed_checksum: int

    @property
    def geometry(self) -> tuple[int, int, int]:
        return self.cylinders, self.heads, self.sectors_per_track


def pack_footer(*, size: int, timestamp: int, unique_id: uuid.UUID,
                data_offset: int = SECTOR, disk_type: int = DISK_TYPE_DYNAMIC) -> bytes:
    cyls, heads, spt = chs_geometry(size // SECTOR)
    raw = FOOTER.pack(FOOTER_COOKIE, FEATURES_RESERVED, FILE_FORMAT_VERSION, data_offset,
                      timestamp & 0xFFFFFFFF, CREATOR_APP, CREATOR_VERSION, CREATOR_HOST_OS,
                      size, size, cyls, heads, spt, disk_type, 0, unique_id.bytes, 0, 0, b"")
    return _with_checksum(raw, FOOTER_CHECKSUM_AT)


def unpack_footer(raw: bytes) -> Footer:
    f = FOOTER.unpack(raw)
    return Footer(*f[:15], uuid.UUID(bytes=f[15]), f[16], f[17],
                  checksum(raw, FOOTER_CHECKSUM_AT))


@dataclass(frozen=True)
class DynamicHeader:
    cookie: bytes
    data_offset: int
    table_offset: int
    version: int
    max_table_entries: int
    block_size: int
    checksum: int
    parent_unique_id: uuid.UUID
    parent_timestamp: int
    parent_name: bytes
    parent_locators: bytes
    computed_checksum: int


def pack_header(layout: Layout) -> bytes:
    raw = HEADER.pack(HEADER_COOKIE, NO_NEXT_STRUCTURE, layout.table_offset, HEADER_VERSION,
                      layout.max_table_entries, layout.block_size, 0, bytes(16), 0, 0,
                      b"", b"", b"")
    return _with_checksum(raw, HEADER_CHECKSUM_AT)


def unpack_header(raw: bytes) -> DynamicHeader:
    h = HEADER.unpack(raw)
    return DynamicHeader(*h[:7], uuid.UUID(bytes=h[7]), h[8], h[10], h[11],
                         checksum(raw, HEADER_CHECKSUM_AT))


@dataclass(frozen=True)
class Batmap:
    """blktap's record of fully written blocks (one bit per BAT entry, MSB first)."""

    cookie: bytes
    batmap_offset: int
    batmap_sectors: int
    version: int
    checksum: int
    marker: int
    bitmap: bytes
    computed_checksum: int

    def is_set(self, block: int) -> bool:
        return bool(self.bitmap[block >> 3] & (0x80 >> (block & 7)))


def pack_batmap_header(layout: Layout, bitmap: bytes) -> bytes:
    covered = bitmap[:layout.batmap_checksum_bytes]
    return BATMAP_HEADER.pack(BATMAP_COOKIE, layout.batmap_offset, layout.batmap_sectors,
                              BATMAP_VERSION, checksum(covered), 0, b"", b"")


def unpack_batmap(raw_header: bytes, bitmap: bytes, checksum_bytes: int) -> Batmap:
    cookie, offset, nsectors, version, csum, marker, _key, _res = BATMAP_HEADER.unpack(raw_header)
    return Batmap(cookie, offset, nsectors, version, csum, marker, bitmap,
                  checksum(bitmap[:checksum_bytes]))


def set_bit(bitmap: bytearray, index: int) -> None:
    bitmap[index >> 3] |= 0x80 >> (index & 7)


def _with_checksum(raw: bytes, at: int) -> bytes:
    return raw[:at] + struct.pack(">I", checksum(raw)) + raw[at + 4:]
