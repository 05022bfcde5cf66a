"""A prebuilt base image: published instead of a diskimage-builder build.

``image.source`` in pipeline.yaml names a file (raw, qcow2 or vhd) an
operator built elsewhere.  Its content digest stands in for the DIB build
digest, so a changed file is a new build and an unchanged one is not; the
import checks the file with ``qemu-img check`` and writes it as the raw base
image every conversion starts from.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from pipeline.core.errors import BuildError, ImageCorruptError
from pipeline.core.formats import QEMU_FORMAT
from pipeline.image import qemu_img

CHUNK = 4 * 1024 * 1024
_DIGESTS: dict[tuple, str] = {}   # (path, size, mtime_ns, inode) -> sha256, per process


def file_sha256(path: Path) -> str:
    """The file's sha256, computed once per process for an unchanged file."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def source_digest(path: Path, source_format: str, name: str) -> str:
    """The build digest of a prebuilt image: its content, format and the image name."""
    header = {"source": file_sha256(path), "format": source_format, "name": name}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


def import_source(path: Path, source_format: str, dest: Path, *, log_path: Path | None = None,
                  progress=None) -> dict:
    """Check ``path`` and write it to ``dest`` as raw (``dest`` is a temporary path)."""
    started = time.monotonic()
    qemu_fmt = QEMU_FORMAT[source_format]
    try:
        qemu_img.check(path, qemu_fmt)
        info = qemu_img.info(path, qemu_fmt)
    except ImageCorruptError as e:
        raise e.at(where=str(path), step="import") from None
    if info.get("virtual-size", 0) <= 0:
        raise BuildError(f"{path.name} has no content (virtual size 0)", where=str(path),
                         step="import")
    qemu_img.convert(path, qemu_fmt, dest, "raw", progress=progress, log_path=log_path)
    os.chmod(dest, 0o644)
    return {"source": str(path), "source_format": source_format,
            "virtual_size": info["virtual-size"],
            "seconds": round(time.monotonic() - started, 1)}
