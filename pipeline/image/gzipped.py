"""The gzip of a raw image, for a cloud whose Glance inflates it on import.

Glance's ``image_decompression`` import plugin recognises gzip by its magic
bytes (``1f 8b 08``) and inflates it with Python's ``gzip`` module before the
data goes to the store (docs/vendor-behaviour.md, "Glance's decompression
plugin").  The file is written in-process with zlib, deterministic (no name,
mtime 0), and checked by inflating it again: what Glance will store must be
the raw file byte for byte, so its sha256 must be the raw's.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

from pipeline.core.errors import ConvertError, ImageCorruptError

LEVEL = 6                    # gzip's default: 144 MiB against level 1's 162 for today's image
CHUNK = 4 * 1024 * 1024
MAGIC = b"\x1f\x8b\x08"      # what Glance's plugin looks for at offset 0


def write_gzip(source: Path, dest: Path, level: int = LEVEL) -> dict:
    """Write ``source`` gzipped to ``dest`` (through ``dest.part``); checked, with a record.

    The record holds the gzip's size and sha256, the sha256 of what it inflates to
    (the source's) and the seconds both passes took.
    """
    source, dest = Path(source), Path(dest)
    part = dest.with_name(dest.name + ".part")
    started = time.monotonic()
    raw_sha = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(part, "wb") as out:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=out,
                               mtime=0) as gz:
                while chunk := src.read(CHUNK):
                    raw_sha.update(chunk)
                    gz.write(chunk)
            out.flush()
            os.fdatasync(out.fileno())
        inflated = inflated_sha256(part)
        if inflated != raw_sha.hexdigest():
            raise ConvertError(f"{dest.name} does not inflate to {source.name}")
        os.replace(part, dest)
    except OSError as e:
        raise ConvertError(f"cannot write {dest.name}: {e.strerror or e}") from e
    finally:
        part.unlink(missing_ok=True)
    return {"bytes": dest.stat().st_size, "sha256": file_sha256(dest),
            "inflates_to": raw_sha.hexdigest(), "level": level,
            "seconds": round(time.monotonic() - started, 2)}


def inflated_sha256(path: Path) -> str:
    """The sha256 of what ``path`` inflates to; ``ImageCorruptError`` if it is no gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(CHUNK):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, ValueError) as e:
        raise ImageCorruptError(f"{Path(path).name}: not a whole gzip ({e})") from e
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
