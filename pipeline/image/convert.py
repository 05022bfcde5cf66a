"""The convert stage: one conversion of the raw base image per disk format."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from pipeline.core.errors import ConvertError, ImageCorruptError
from pipeline.core.formats import QEMU_FORMAT
from pipeline.image import gzipped, qemu_img, vhd
from pipeline.settings.profile import ImageSection

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


def compressed_formats(clouds: Iterable[tuple[str, ImageSection]]) -> tuple[str, ...]:
    """The conversions written compressed, decided once when a run is planned.

    ``clouds`` holds each selected cloud's disk format and image section.  qcow2:
    compressed clusters unless a qcow2 cloud says no (``compress_qcow2``).  raw: a
    gzip beside the raw file when a raw cloud's Glance inflates one on import
    (``image.raw_compressed_imports``); the raw file itself is what the local boot
    boots and what the other clouds get.
    """
    clouds = list(clouds)
    out = []
    if compress_qcow2(image.qcow2_compressed for fmt, image in clouds if fmt == "qcow2"):
        out.append("qcow2")
    if any(image.raw_compressed_imports for fmt, image in clouds if fmt == "raw"):
        out.append("raw")
    return tuple(out)


def gzip_path(path: str | Path) -> Path:
    """Where the gzip of a converted raw file lives: beside it."""
    path = Path(path)
    return path.with_name(path.name + ".gz")


def convert_image(base: Path, dest: Path, disk_format: str, *, log_path: Path | None = None,
                  progress=None, compress: bool = False,
                  gzip_dest: Path | None = None) -> dict:
    """Write ``base`` (raw) as ``disk_format`` to ``dest`` and check the result.

    ``compress``: qcow2 with compressed clusters; raw with its gzip written to
    ``gzip_dest`` (the record's ``gzip``), checked to inflate to the raw file.

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
                         log_path=log_path, compress=compress and disk_format == "qcow2")
    qemu_img.check(dest, QEMU_FORMAT[disk_format])
    info = qemu_img.info(dest, QEMU_FORMAT[disk_format])
    base_size = Path(base).stat().st_size
    if info.get("virtual-size", 0) < base_size:
        raise ConvertError(f"{dest.name}: virtual size {info.get('virtual-size')} is smaller "
                           f"than the base image's {base_size}")
    gz = None
    if compress and disk_format == "raw":
        if gzip_dest is None:
            raise ConvertError("a compressed raw conversion needs a place for its gzip")
        gz = gzipped.write_gzip(dest, gzip_dest)
        LOG.info("gzip of the raw image: %d bytes in %.1f s", gz["bytes"], gz["seconds"])
    seconds = time.monotonic() - started
    record = {"format": disk_format, "qemu_format": QEMU_FORMAT[disk_format],
              "bytes": Path(dest).stat().st_size, "virtual_size": info["virtual-size"],
              "allocated": Path(dest).stat().st_blocks * 512, "compressed": compress,
              "seconds": round(seconds, 2), **({"gzip": gz} if gz else {})}
    LOG.info("converted to %s in %.1f s (%d bytes)", disk_format, seconds, record["bytes"])
    return record


def compressed_payload(path: str | Path, *, where: str | None = None,
                       step: str = "check") -> Path | None:
    """The gzip the conversion wrote beside a raw ``path``, or None if it wrote none.

    An ``ImageCorruptError`` if the record lists one that is missing or no longer
    the size it was written (the raw file is checked by ``check_converted``).
    """
    path = Path(path)
    try:
        record = json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError):
        return None
    written = record.get("gzip") if isinstance(record, dict) else None
    if not written:
        return None
    gz = gzip_path(path)
    size = gz.stat().st_size if gz.is_file() else None
    if size != written.get("bytes"):
        raise ImageCorruptError(f"{gz.name} is {size if size is not None else 'missing'}"
                                f"{' bytes' if size is not None else ''}, the conversion "
                                f"wrote {written.get('bytes')} bytes", where=where or str(gz),
                                step=step)
    return gz


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
