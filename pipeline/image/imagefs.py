"""Files read out of a raw disk image, without booting it or running anything in it.

The content manifest needs a few files from the image's root file system (the
dpkg status database, the kernels under ``/boot``).  Each file system is found
by ``blkid -p`` at the image's start or at each partition ``sfdisk --json``
lists; ext2/3/4 is mounted read-only from a read-only loop device at the
partition's offset, FAT (which this host's kernel may lack) is read with
mtools (``mcopy -i image@@offset``).  Loop devices and mounts are always
released, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import runner
from pipeline.core.errors import BuildError

EXT = ("ext2", "ext3", "ext4")
FAT = ("vfat", "msdos")


@dataclass(frozen=True)
class FileSystem:
    offset: int          # bytes from the image's start
    size: int | None     # bytes (None: to the end of the image)
    type: str            # blkid's TYPE


def _probe(image: Path, offset: int) -> str | None:
    result = runner.run(["blkid", "-p", "-o", "export", "--offset", str(offset), str(image)],
                        capture=True, check=False, step="manifest")
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return fields.get("TYPE") if fields.get("USAGE") == "filesystem" else None


def file_systems(image: Path) -> list[FileSystem]:
    """The file systems we can read, at the image's start or in its partitions."""
    whole = _probe(image, 0)
    if whole:
        return [FileSystem(0, None, whole)]
    result = runner.run(["sfdisk", "--json", str(image)], capture=True, check=False,
                        step="manifest")
    try:
        table = json.loads(result.stdout)["partitiontable"]
    except (ValueError, KeyError):
        return []
    sector = int(table.get("sectorsize", 512))
    found = []
    for part in table.get("partitions", []):
        offset, size = int(part["start"]) * sector, int(part["size"]) * sector
        kind = _probe(image, offset) if size else None
        if kind:
            found.append(FileSystem(offset, size, kind))
    return found


@contextlib.contextmanager
def _ext_mount(image: Path, fs: FileSystem) -> Iterator[Path]:
    argv = ["losetup", "--read-only", "--find", "--show", "--offset", str(fs.offset)]
    if fs.size:
        argv += ["--sizelimit", str(fs.size)]
    device = runner.run([*argv, str(image)], capture=True, step="manifest").stdout.strip()
    mountpoint = Path(tempfile.mkdtemp(prefix="imagefleet-mnt-"))
    try:
        # noload: do not replay an ext3/4 journal, even on the read-only loop device
        options = "ro,noload" if fs.type in ("ext3", "ext4") else "ro"
        runner.run(["mount", "-t", fs.type, "-o", options, device, str(mountpoint)],
                   step="manifest")
        try:
            yield mountpoint
        finally:
            runner.run(["umount", str(mountpoint)], step="manifest", check=False)
    finally:
        runner.run(["losetup", "--detach", device], step="manifest", check=False)
        mountpoint.rmdir()


def _copy_out_ext(image: Path, fs: FileSystem, paths: Sequence[str], dest: Path) -> None:
    with _ext_mount(image, fs) as root:
        for pattern in paths:
            for found in root.glob(pattern):
                if found.is_file():
                    target = dest / found.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(found, target)


def _copy_out_fat(image: Path, fs: FileSystem, paths: Sequence[str], dest: Path) -> None:
    drive = f"{image}@@{fs.offset}"
    for pattern in paths:
        parent, _, name = pattern.rpartition("/")
        listing = runner.run(["mdir", "-b", "-i", drive, f"::/{parent}"], capture=True,
                             check=False, step="manifest", env={"MTOOLS_SKIP_CHECK": "1"})
        for line in listing.stdout.splitlines():
            found = line.strip().removeprefix("::/")
            if not Path(found).match(pattern if parent else name):
                continue
            target = dest / found
            target.parent.mkdir(parents=True, exist_ok=True)
            runner.run(["mcopy", "-n", "-i", drive, f"::/{found}", str(target)],
                       step="manifest", env={"MTOOLS_SKIP_CHECK": "1"})


def copy_out(image: str | Path, paths: Sequence[str], dest: str | Path) -> Path | None:
    """Copy the files matching ``paths`` (globs relative to the root, e.g.
    ``boot/vmlinuz-*``) from the first file system holding any of them into ``dest``.
    Returns ``dest``, or None when no readable file system holds any of them."""
    image, dest = Path(image), Path(dest)
    for fs in file_systems(image):
        if fs.type in EXT:
            _copy_out_ext(image, fs, paths, dest)
        elif fs.type in FAT:
            _copy_out_fat(image, fs, paths, dest)
        else:
            continue
        if any(p.is_file() for p in dest.rglob("*")):
            return dest
    if not dest.exists():
        raise BuildError(f"{image.name}: no file system this host can read", step="manifest")
    return None
