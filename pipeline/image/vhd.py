"""Write a dynamic VHD that XenServer-style clouds accept, straight from a raw image.

The file matches what diskimage-builder's patched ``vhd-util convert`` made
(creator "tap", a blktap batmap, 2 MiB blocks with page-aligned data), but holes
and all-zero blocks stay unallocated, so a mostly empty disk converts in
seconds. One pass over the source: data blocks are written as found, then the
BAT, batmap and both footers.

Virtual size rule: the source size rounded up to whole blocks, as vhd-util
does. That is ``current_size``; the CHS geometry is derived from it by the
spec's algorithm and may round down (it caps near 127 GiB), which is harmless
because qemu and XenServer read ``current_size`` for creator "tap". The padding
reads back as zeros, so ``qemu-img compare`` of the raw source and the VHD
reports them identical.
"""

from __future__ import annotations

import collections
import errno
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.core.errors import ConvertError, DiskFullError, ImageCorruptError
from pipeline.image import vhd_format as fmt

Progress = Callable[[int, int], None]
WRITERS = 1  # more do not help: buffered writes to one file serialise on its inode


@dataclass(frozen=True)
class VhdInfo:
    path: str
    source_size: int
    virtual_size: int
    block_size: int
    blocks_total: int
    blocks_allocated: int
    file_size: int
    unique_id: uuid.UUID
    geometry: tuple[int, int, int]


def write_vhd(src_path: str | os.PathLike, dest_path: str | os.PathLike, *,
              block_size: int = fmt.DEFAULT_BLOCK_SIZE,
              progress: Progress | None = None, sync: bool = True) -> VhdInfo:
    """Convert the raw image ``src_path`` into a dynamic VHD at ``dest_path``.

    ``dest_path`` is overwritten; callers pass a temporary path and rename it, so
    by default the data is flushed to disk first (``sync=False`` skips that, as
    ``qemu-img convert`` does). ``progress(bytes_done, bytes_total)`` follows the scan.
    """
    if block_size & (block_size - 1) or not 4096 <= block_size <= fmt.DEFAULT_BLOCK_SIZE:
        raise ValueError(f"block size must be a power of two from 4 KiB to 2 MiB, not {block_size}")
    src = _open(src_path, os.O_RDONLY, "cannot open source")
    try:
        source_size = _io(src_path, "cannot size source", os.lseek, src, 0, os.SEEK_END)
        if source_size == 0:
            raise ConvertError("source image is empty", where=str(src_path))
        layout = fmt.plan_layout(source_size, block_size)
        if layout.virtual_size > fmt.MAX_VIRTUAL_SIZE:
            raise ConvertError(f"{source_size} bytes is over the VHD limit of 2040 GiB",
                               where=str(src_path))
        dest = _open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "cannot create")
        try:
            info = _write(src, dest, src_path, dest_path, source_size, layout, progress)
            if sync:
                _io(dest_path, "cannot flush", os.fdatasync, dest)
        finally:
            os.close(dest)
    finally:
        os.close(src)
    return info


def _write(src: int, dest: int, src_path, dest_path, source_size: int, layout: fmt.Layout,
           progress: Progress | None) -> VhdInfo:
    """Read and test blocks in order here; write the non-zero ones on a writer thread.

    Placement is decided here, in order; the thread only overlaps writing one
    block with reading the next. Memory use is (WRITERS + 2) blocks.
    """
    block_size = layout.block_size
    bat = bytearray(fmt.sectors(layout.max_table_entries * 4) * fmt.SECTOR)  # zero padding
    bat[:layout.max_table_entries * 4] = b"\xff" * (layout.max_table_entries * 4)
    batmap = bytearray(layout.batmap_sectors * fmt.SECTOR)
    bitmap = b"\xff" * layout.bitmap_size  # every sector of a written block is present
    zero = bytes(block_size)
    spare = [bytearray(block_size) for _ in range(WRITERS + 2)]
    in_flight: collections.deque[Future] = collections.deque()
    end_of_data = layout.headers_end
    allocated = 0

    def write_block(buf: bytearray, offset: int) -> bytearray:
        _write_all(dest, [bitmap, buf], offset, dest_path)
        return buf

    with ThreadPoolExecutor(WRITERS, thread_name_prefix="vhd-write") as pool:
        try:
            for block in _candidate_blocks(src, source_size, block_size, src_path):
                buf = spare.pop() if spare else in_flight.popleft().result()
                view = memoryview(buf)
                got = _read_block(src, view, block * block_size, src_path)
                if got < block_size:
                    view[got:] = zero[got:]
                if progress:
                    progress(min((block + 1) * block_size, source_size), source_size)
                if buf == zero:
                    spare.append(buf)
                    continue
                sector = layout.block_sector(end_of_data)
                in_flight.append(pool.submit(write_block, buf, sector * fmt.SECTOR))
                bat[block * 4:block * 4 + 4] = sector.to_bytes(4, "big")
                fmt.set_bit(batmap, block)
                end_of_data = sector * fmt.SECTOR + layout.bitmap_size + block_size
                allocated += 1
            while in_flight:
                in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()

    stamp = int(time.time()) - fmt.VHD_EPOCH
    unique_id = uuid.uuid4()
    footer = fmt.pack_footer(size=layout.virtual_size, timestamp=stamp, unique_id=unique_id)
    head = b"".join([footer, fmt.pack_header(layout), bat,
                     fmt.pack_batmap_header(layout, batmap), batmap])
    _write_all(dest, [head], 0, dest_path)
    _write_all(dest, [footer], end_of_data, dest_path)
    if progress:
        progress(source_size, source_size)
    return VhdInfo(str(dest_path), source_size, layout.virtual_size, block_size,
                   layout.max_table_entries, allocated, end_of_data + fmt.SECTOR, unique_id,
                   fmt.chs_geometry(layout.virtual_size // fmt.SECTOR))


def _candidate_blocks(fd: int, size: int, block_size: int, path) -> Iterator[int]:
    """Blocks that overlap data extents; holes are skipped without reading them."""
    offset, next_block = 0, 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                return
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no sparse support: read all
                yield from range(next_block, -(-size // block_size))
                return
            raise ConvertError(f"cannot map data extents ({e.strerror})", where=str(path)) from e
        first, last = start // block_size, (min(end, size) - 1) // block_size
        yield from range(max(first, next_block), last + 1)
        next_block = max(next_block, last + 1)
        offset = max(end, next_block * block_size)


def _read_block(fd: int, view: memoryview, offset: int, path) -> int:
    got = 0
    while got < len(view):
        n = _io(path, "cannot read source", os.preadv, fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _write_all(fd: int, parts: list, offset: int, path) -> None:
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        n = _io(path, "cannot write", os.pwritev, fd, views, offset)
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views:
            views[0] = views[0][n:]


def _open(path, flags: int, what: str) -> int:
    return _io(path, what, os.open, path, flags, 0o644)


def _io(path, what: str, call, *args):
    try:
        return call(*args)
    except OSError as e:
        cls = DiskFullError if e.errno == errno.ENOSPC else ConvertError
        raise cls(f"{what} ({e.strerror or e})", where=str(path), step="convert") from e


# --- reading back ----------------------------------------------------------

def read_footer(path: str | os.PathLike) -> fmt.Footer:
    """The footer at the end of the file (the copy that counts)."""
    return fmt.unpack_footer(_pread(path, max(0, _size(path) - fmt.SECTOR), fmt.SECTOR))


def read_footer_copy(path: str | os.PathLike) -> fmt.Footer:
    """The copy of the footer a dynamic disk keeps at offset 0."""
    return fmt.unpack_footer(_pread(path, 0, fmt.SECTOR))


def read_dynamic_header(path: str | os.PathLike) -> fmt.DynamicHeader:
    footer = read_footer(path)
    return fmt.unpack_header(_pread(path, footer.data_offset, fmt.HEADER.size))


def read_bat(path: str | os.PathLike) -> list[int]:
    """BAT entries: the sector where each block's bitmap starts, or 0xFFFFFFFF."""
    header = read_dynamic_header(path)
    raw = _pread(path, header.table_offset, header.max_table_entries * 4)
    return [int.from_bytes(raw[i:i + 4], "big") for i in range(0, len(raw), 4)]


def read_batmap(path: str | os.PathLike) -> fmt.Batmap:
    """blktap's batmap: found right after the padded BAT, as vhd-util looks for it."""
    footer = read_footer(path)
    header = read_dynamic_header(path)
    at = header.table_offset + fmt.sectors(header.max_table_entries * 4) * fmt.SECTOR
    raw_header = _pread(path, at, fmt.SECTOR)
    _cookie, offset, nsectors = fmt.BATMAP_HEADER.unpack(raw_header)[:3]
    bitmap = _pread(path, offset, nsectors * fmt.SECTOR)
    return fmt.unpack_batmap(raw_header, bitmap, fmt.batmap_checksum_bytes(footer.current_size))


def check_vhd(path: str | os.PathLike) -> fmt.Footer:
    """Validate cookies, checksums and BAT bounds; raise ``ImageCorruptError`` if damaged."""
    where = str(path)

    def fail(cause: str) -> ImageCorruptError:
        return ImageCorruptError(cause, where=where)

    size = _size(path)
    if size < 4 * fmt.SECTOR:
        raise fail(f"{size} bytes is too short for a VHD")
    footer = read_footer(path)
    if footer.cookie != fmt.FOOTER_COOKIE:
        raise fail(f"bad footer cookie {footer.cookie!r}")
    if footer.checksum != footer.computed_checksum:
        raise fail(f"footer checksum {footer.checksum:#010x}, computed "
                   f"{footer.computed_checksum:#010x}")
    if footer.disk_type != fmt.DISK_TYPE_DYNAMIC:
        return footer
    if _pread(path, 0, fmt.SECTOR) != _pread(path, size - fmt.SECTOR, fmt.SECTOR):
        raise fail("footer copy at offset 0 differs from the footer at the end")
    header = read_dynamic_header(path)
    if header.cookie != fmt.HEADER_COOKIE:
        raise fail(f"bad dynamic header cookie {header.cookie!r}")
    if header.checksum != header.computed_checksum:
        raise fail(f"dynamic header checksum {header.checksum:#010x}, computed "
                   f"{header.computed_checksum:#010x}")
    if header.max_table_entries * header.block_size < footer.current_size:
        raise fail(f"BAT of {header.max_table_entries} blocks is too small for the disk size")
    block_bytes = fmt.sectors(header.block_size // fmt.SECTOR // 8) * fmt.SECTOR + header.block_size
    for block, sector in enumerate(read_bat(path)):
        if sector != fmt.BAT_UNUSED and sector * fmt.SECTOR + block_bytes > size - fmt.SECTOR:
            raise fail(f"block {block} at sector {sector} runs past the end of the file")
    if footer.creator_app == fmt.CREATOR_APP and footer.creator_version >= 0x00010002:
        batmap = read_batmap(path)
        if batmap.cookie != fmt.BATMAP_COOKIE:
            raise fail(f"bad batmap cookie {batmap.cookie!r}")
        if batmap.version > fmt.BATMAP_VERSION:
            raise fail(f"batmap version {batmap.version:#010x} is newer than blktap's")
        if batmap.checksum != batmap.computed_checksum:
            raise fail(f"batmap checksum {batmap.checksum:#010x}, computed "
                       f"{batmap.computed_checksum:#010x}")
    return footer


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError as e:
        raise ImageCorruptError(f"cannot read ({e.strerror or e})", where=str(path)) from e


def _pread(path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError as e:
        raise ImageCorruptError(f"cannot read ({e.strerror or e})", where=str(path)) from e
    if len(data) != length:
        raise ImageCorruptError(f"truncated: wanted {length} bytes at offset {offset}",
                                where=str(path))
    return data
