"""Glance's ``image_conversion`` import plugin: the staged data becomes ``output_format``.

Upstream ``glance/async_/flows/plugins/image_conversion.py`` runs ``qemu-img
convert`` on the staged file during an interoperable import and sets the
image's ``disk_format`` to ``[image_conversion] output_format``; size, checksum
and os_hash_value are then those of the converted data.  Here the personality's
``image_import.convert_to`` is that setting (docs/vendor-behaviour.md,
"Conversion on import").
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from localcloud.cloud import Cloud
from localcloud.http import CHUNK, Digest, Received
from qemuhost.formats import QEMU_DRIVERS

QEMU_IMG = "qemu-img"


class ConversionFailed(Exception):
    """qemu-img could not convert; the message is what the import task reports."""


def target_format(cloud: Cloud, disk_format: str | None) -> str | None:
    """The format this cloud converts an import of ``disk_format`` to, if it converts."""
    target = cloud.personality.image_import["convert_to"]
    return target if target and disk_format and disk_format != target else None


def _digest(path: Path) -> Received:
    digest = Digest()
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            digest.update(data)
    return digest.result()


async def convert(source: Path, source_format: str, target: str, out: Path) -> Received:
    """Convert ``source`` into ``out``; the digests of what Glance will store."""
    argv = [QEMU_IMG, "convert", "-f", QEMU_DRIVERS.get(source_format, source_format),
            "-O", QEMU_DRIVERS.get(target, target), str(source), str(out)]
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode:
        out.unlink(missing_ok=True)
        tail = output.decode(errors="replace").strip()[-300:]
        raise ConversionFailed(f"Image conversion from {source_format} to {target} failed: "
                               f"{tail}")
    return await asyncio.to_thread(_digest, out)


async def convert_blob(cloud: Cloud, doc: dict, blob: str,
                       received: Received) -> tuple[str, Received]:
    """Where the cloud converts: the staged blob replaced by the converted one, and the
    image's ``disk_format`` set to the target; otherwise the blob as it was."""
    target = target_format(cloud, doc["disk_format"])
    if target is None:
        return blob, received
    tmp = cloud.store.tmp_path()
    try:
        converted = await convert(cloud.store.blob_path(blob), doc["disk_format"], target, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    cloud.store.remove_blob(blob)
    doc["disk_format"] = target
    return cloud.store.commit_blob(tmp), converted
