"""The convert stage: one conversion of the raw base image per disk format."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from pipeline.core.errors import ConvertError, ImageCorruptError
from pipeline.core.formats import QEMU_FORMAT
from pipeline.image import qemu_img, vhd

LOG = logging.getLogger(__name__)


class _PercentLogger:
    """Log conversion progress every ``step`` percent (no terminal needed)."""

    def __init__(self, label: str, step: float = 10.0):
        self.label, self.step, self.next = label, step, step

    def __call__(self, percent: float) -> None:
        if percent >= self.next:
            LOG.info("%s: %.0f%%", self.label, percent)
            while self.next <= percent:
                self.next += self.step


def compress_qcow2(cloud_allows: Iterable[bool]) -> bool:
    """One qcow2 file serves every qcow2 cloud: compressed unless one of them says no.

    ``cloud_allows`` holds each qcow2 cloud's ``image.qcow2_compressed``; no cloud
    at all (``imagefleet build --format qcow2``) means the default, compressed.
    """
    return all(cloud_allows)


def convert_image(base: Path, dest: Path, disk_format: str, *, log_path: Path | None = None,
                  progress=None, compress: bool = False) -> dict:
    """Write ``base`` (raw) as ``disk_format`` to ``dest`` and check the result.

    ``compress`` (qcow2 only) writes compressed clusters.

    VHD is written by our own writer (``pipeline.image.vhd``): qemu's ``vpc`` output
    is not what XenServer-style clouds accept.
    """
    dest = Path(dest)
    if disk_format not in QEMU_FORMAT:
        raise ConvertError(f"unknown disk format {disk_format!r}")
    started = time.monotonic()
    report = progress or _PercentLogger(f"convert {disk_format}")
    if disk_format == "vhd":
        vhd.write_vhd(base, dest, progress=lambda done, total: report(100.0 * done / max(total, 1)))
        vhd.check_vhd(dest)
    else:
        qemu_img.convert(base, "raw", dest, QEMU_FORMAT[disk_format], progress=report,
                         log_path=log_path, compress=compress)
    qemu_img.check(dest, QEMU_FORMAT[disk_format])
    info = qemu_img.info(dest, QEMU_FORMAT[disk_format])
    base_size = Path(base).stat().st_size
    if info.get("virtual-size", 0) < base_size:
        raise ConvertError(f"{dest.name}: virtual size {info.get('virtual-size')} is smaller "
                           f"than the base image's {base_size}")
    seconds = time.monotonic() - started
    record = {"format": disk_format, "qemu_format": QEMU_FORMAT[disk_format],
              "bytes": Path(dest).stat().st_size, "virtual_size": info["virtual-size"],
              "allocated": Path(dest).stat().st_blocks * 512, "compressed": compress,
              "seconds": round(seconds, 2)}
    LOG.info("converted to %s in %.1f s (%d bytes)", disk_format, seconds, record["bytes"])
    return record


def check_converted(path: Path, disk_format: str, *, where: str | None = None,
                    step: str = "check") -> None:
    """Before a local boot or an upload: the file is still what the conversion wrote,
    and undamaged; an ``ImageCorruptError`` at ``where``/``step`` naming the file if not.

    ``qemu-img check`` finds damaged qcow2 metadata; the conversion record
    beside the file (``<file>.json``) gives the size a truncated or extended
    file no longer has, which is all a raw file can be checked for.
    """
    path = Path(path)
    try:
        record_path = path.with_name(path.name + ".json")
        if record_path.is_file():
            expected = json.loads(record_path.read_text()).get("bytes")
            actual = path.stat().st_size
            if expected is not None and actual != expected:
                raise ImageCorruptError(f"{path.name} is {actual} bytes, the conversion "
                                        f"wrote {expected}: truncated or changed since")
        if disk_format == "vhd":
            vhd.check_vhd(path)
        else:
            qemu_img.check(path, QEMU_FORMAT[disk_format])
    except ImageCorruptError as e:
        cause = e.cause if e.cause.startswith(path.name) else f"{path.name}: {e.cause}"
        raise ImageCorruptError(cause, where=where or str(path), step=step) from None
