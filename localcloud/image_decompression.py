"""Glance's ``image_decompression`` import plugin: a gzip payload is inflated on import.

Upstream ``glance/async_/flows/plugins/image_decompression.py`` (2025.1) reads
the staged file's first bytes during an interoperable import and, unless the
image's ``container_format`` is ``compressed``, inflates a gzip (magic
``1f 8b 08``), a zip or an lha archive in place; size, checksum and
os_hash_value are then those of the inflated data.  Before Glance 2026.1 it
leaves the image's size at what was staged, so a glance-direct import (whose
stage recorded the compressed size) fails when the store's size differs, unless
``image_conversion`` converted the data afterwards and set the size itself
(bug 2132607; the fix is the personality's ``decompress_sets_size``).  Only gzip
is reproduced here (docs/vendor-behaviour.md, "Glance's decompression plugin").
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

from localcloud.cloud import Cloud
from localcloud.http import CHUNK, Digest, Received

GZIP_MAGIC = b"\x1f\x8b\x08"
SIZE_KEPT = "size of uploaded data is different from current value set on the image."


class DecompressionFailed(Exception):
    """The payload could not be inflated, or its staged size stood; the task's message."""


def applies(cloud: Cloud, doc: dict, path: Path) -> bool:
    """Whether the plugin inflates this staged file for this image."""
    if not cloud.personality.image_import["decompress"]:
        return False
    if doc.get("container_format") == "compressed":
        return False
    with open(path, "rb") as f:
        return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def _inflate(source: Path, out: Path) -> Received:
    digest = Digest()
    try:
        with gzip.open(source, "rb") as gz, open(out, "wb") as f:
            while data := gz.read(CHUNK):
                f.write(data)
                digest.update(data)
    except (gzip.BadGzipFile, EOFError) as e:
        raise DecompressionFailed(f"Image decompression failed: {e}") from e
    return digest.result()


async def inflate(source: Path, out: Path) -> Received:
    """Inflate ``source`` into ``out``; the digests of what Glance will store."""
    try:
        return await asyncio.to_thread(_inflate, source, out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


async def decompress(cloud: Cloud, blob: str) -> tuple[str, Received]:
    """The staged gzip blob replaced by the blob it inflates to, with its digests."""
    tmp = cloud.store.tmp_path()
    inflated = await inflate(cloud.store.blob_path(blob), tmp)
    cloud.store.remove_blob(blob)
    return cloud.store.commit_blob(tmp), inflated
