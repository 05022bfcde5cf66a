"""Discard the base image's free space and measure where its used space goes.

Blocks of files deleted during a build (apt's lists and archives, a purged
kernel) would otherwise stay allocated in the raw file, and every format
would carry them.  diskimage-builder's block-device layer runs ``fstrim`` when
it unmounts; this step does not rely on that: it measures the bytes allocated
in free filesystem blocks (``dumpe2fs``'s free ranges against the file's data
extents), loop-mounts the root filesystem straight from the raw file (an offset
loop device: no partition scan, no device-mapper), runs ``fstrim`` (the loop
driver punches holes in the file) and measures again.  ``qemu-img convert -S``
and the VHD writer skip holes, so no format ships a dead block.  While
mounted, ``du`` of the top directories goes to the build log: the measure of
what the image holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import runner
from pipeline.core.errors import BuildError, CommandError

LOG = logging.getLogger(__name__)

SECTOR = 512
# MBR/GPT type codes of Linux filesystems (sfdisk --json spells them like this).
LINUX_TYPES = {"83", "0fc63daf-8483-4772-8e79-3d69d8477de4"}
DU_DEPTH = 2
DU_TOP = 25


@dataclass(frozen=True)
class Partition:
    start: int          # bytes from the start of the disk
    size: int           # bytes


def root_partition(table: dict) -> Partition:
    """The largest Linux partition of ``sfdisk --json``'s answer (pure, table-tested).

    A disk without a partition table is taken whole by the caller instead.
    """
    parts = (table.get("partitiontable") or {}).get("partitions") or []
    linux = [p for p in parts if str(p.get("type", "")).lower() in LINUX_TYPES]
    if not linux:
        raise BuildError("the base image has no Linux partition to trim "
                         f"(types: {', '.join(str(p.get('type')) for p in parts) or 'none'})")
    best = max(linux, key=lambda p: int(p["size"]))
    sector = int((table.get("partitiontable") or {}).get("sectorsize", SECTOR))
    return Partition(start=int(best["start"]) * sector, size=int(best["size"]) * sector)


def parse_du(text: str, top: int = DU_TOP) -> list[tuple[int, str]]:
    """``du -x -k`` lines as (bytes, path), largest first, at most ``top`` of them."""
    rows = []
    for line in text.splitlines():
        size, _, path = line.partition("\t")
        if size.strip().isdigit() and path:
            rows.append((int(size) * 1024, path))
    rows.sort(key=lambda r: (-r[0], r[1]))
    return rows[:top]


def blocks_in_use(tune2fs_list: str) -> int:
    """Bytes the filesystem holds in use, metadata and journal included, from
    ``tune2fs -l`` (pure): what an image without dead blocks allocates."""
    fields = {}
    for line in tune2fs_list.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    try:
        count, free = int(fields["Block count"]), int(fields["Free blocks"])
        size = int(fields["Block size"])
    except (KeyError, ValueError):
        raise BuildError("tune2fs -l gave no block count, free blocks or block size") from None
    return (count - free) * size


def free_ranges(dumpe2fs: str) -> tuple[int, list[tuple[int, int]]]:
    """The block size and free block ranges (first, last inclusive) of ``dumpe2fs``'s
    per-group ``Free blocks:`` lines (pure)."""
    block_size, ranges = 0, []
    for line in dumpe2fs.splitlines():
        if line.startswith("Block size:"):
            block_size = int(line.split(":", 1)[1])
        elif line.startswith((" ", "\t")) and line.strip().startswith("Free blocks:"):
            for token in line.split(":", 1)[1].split(","):
                token = token.strip()
                if token:
                    first, _, last = token.partition("-")
                    ranges.append((int(first), int(last or first)))
    if not block_size:
        raise BuildError("dumpe2fs gave no block size")
    return block_size, ranges


def dead_bytes(extents: list[tuple[int, int]], free: list[tuple[int, int]],
               part_start: int, block_size: int) -> int:
    """Bytes of the disk's data ``extents`` ([start, end) in bytes) that lie in free
    filesystem blocks (pure): what an image ships for nothing."""
    dead = 0
    for first, last in free:
        lo, hi = part_start + first * block_size, part_start + (last + 1) * block_size
        for start, end in extents:
            dead += max(0, min(end, hi) - max(start, lo))
    return dead


def data_extents(path: str | os.PathLike) -> list[tuple[int, int]]:
    """The file's data ranges ([start, end) in bytes), holes left out."""
    extents = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size, offset = os.fstat(fd).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:         # ENXIO: only a hole is left
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    finally:
        os.close(fd)
    return extents


def find_root(image: str | os.PathLike, *, log_path: Path | None = None) -> Partition:
    """The root partition of the raw ``image``; ``BuildError`` when it has none."""
    result = runner.run(["sfdisk", "--json", str(image)], capture=True, timeout=60,
                        step="trim", log_path=log_path, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"{Path(image).name} has no partition table", step="trim")
    return root_partition(json.loads(result.stdout))


def measure_dead(image: str | os.PathLike, *, log_path: Path | None = None) -> int:
    """Bytes of the raw ``image`` allocated in blocks its root filesystem has free."""
    part = find_root(image, log_path=log_path)
    dev = runner.run(["losetup", "--find", "--show", "--read-only", "--offset",
                      str(part.start), "--sizelimit", str(part.size), str(image)],
                     capture=True, timeout=60, step="trim", log_path=log_path).stdout.strip()
    try:
        listing = runner.run(["dumpe2fs", dev], capture=True, timeout=300, step="trim").stdout
    finally:
        runner.run(["losetup", "--detach", dev], timeout=60, step="trim", check=False)
    block_size, free = free_ranges(listing)
    # The disk's extents are sorted and so are the ranges: clip both to one pass each.
    return dead_bytes(data_extents(image), free, part.start, block_size)


def allocated_bytes(path: str | os.PathLike) -> int:
    """Bytes the file really occupies on disk (holes excluded)."""
    return os.stat(path).st_blocks * 512


@contextlib.contextmanager
def mounted_root(image: Path, *, log_path: Path | None = None) -> Iterator[tuple[Path, str]]:
    """The raw image's root filesystem, read-write on an offset loop device: (mount
    point, device)."""
    part = find_root(image, log_path=log_path)
    dev = runner.run(["losetup", "--find", "--show", "--offset", str(part.start),
                      "--sizelimit", str(part.size), str(image)],
                     capture=True, timeout=60, step="trim", log_path=log_path).stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="imagefleet-root-") as mnt:
            runner.run(["mount", "-t", "ext4", dev, mnt], timeout=120, step="trim",
                       log_path=log_path)
            try:
                yield Path(mnt), dev
            finally:
                runner.run(["umount", mnt], timeout=300, step="trim", log_path=log_path)
    finally:
        runner.run(["losetup", "--detach", dev], timeout=60, step="trim", log_path=log_path,
                   check=False)


def _inside(path: str, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return "/" if rel == "." else "/" + rel


def trim_and_measure(image: str | os.PathLike, *, log_path: Path | None = None) -> dict:
    """Discard the free blocks of ``image``'s root filesystem; a record of what changed.

    A disk without a partition table or Linux partition is left as it is (the
    record says why); one whose filesystem cannot be mounted or trimmed is a
    ``BuildError``.

    The record: allocated bytes before and after, bytes allocated in free
    blocks before and after (``dead_*``), the bytes files use, the blocks the
    filesystem has in use (journal and metadata too) and the largest
    directories (``du``), all also written to the build log.
    """
    image = Path(image)
    before = allocated_bytes(image)
    try:
        find_root(image, log_path=log_path)
    except BuildError as e:         # not a partitioned disk (a test's fake build): as it is
        LOG.warning("free space not discarded: %s", e.cause)
        return {"allocated_before": before, "allocated_after": before, "skipped": e.cause}
    try:
        dead_before = measure_dead(image, log_path=log_path)
        with mounted_root(image, log_path=log_path) as (root, dev):
            du = runner.run(["du", "-x", "-k", f"--max-depth={DU_DEPTH}", str(root)],
                            capture=True, timeout=600, step="trim", log_path=log_path)
            stat = os.statvfs(root)
            used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
            runner.run(["fstrim", "-v", str(root)], timeout=600, step="trim",
                       log_path=log_path)
            runner.run(["sync", "-f", str(root)], timeout=300, step="trim")
            in_use = blocks_in_use(runner.run(["tune2fs", "-l", dev], capture=True,
                                              timeout=60, step="trim").stdout)
        dead_after = measure_dead(image, log_path=log_path)
    except CommandError as e:
        raise BuildError(f"cannot discard the base image's free space: {e.cause}",
                         step="trim") from e
    after = allocated_bytes(image)
    top = [(size, _inside(path, root)) for size, path in parse_du(du.stdout)]
    record = {"allocated_before": before, "allocated_after": after, "fs_used": used,
              "fs_blocks_in_use": in_use, "dead_before": dead_before, "dead_after": dead_after,
              "du": [{"path": p, "bytes": s} for s, p in top]}
    lines = [f"{s / 2**20:9.1f} MiB  {p}" for s, p in top]
    summary = (f"free space discarded: allocated {before / 2**20:.0f} MiB -> "
               f"{after / 2**20:.0f} MiB, in free blocks {dead_before / 2**20:.1f} MiB -> "
               f"{dead_after / 2**20:.1f} MiB; files use {used / 2**20:.0f} MiB, the filesystem "
               f"with its journal and metadata {in_use / 2**20:.0f} MiB")
    LOG.info("%s", summary)
    if log_path:
        with open(log_path, "a") as f:
            f.write(summary + "\nwhere the space goes (du -x, depth "
                    f"{DU_DEPTH}):\n" + "\n".join(lines) + "\n")
    return record
