"""What arrived in Glance, judged against what we sent (pure): reuse, checksums,
a conversion by the cloud, and the typed metadata a create call carries."""

from __future__ import annotations

from typing import Any

from pipeline.cloud.images import Image
from pipeline.cloud.marks import CONVERTED_FROM, SHA256, BuildInfo, is_this_build
from pipeline.core.checksums import Digests
from pipeline.settings.profile import MetadataSection


def metadata_fields(metadata: MetadataSection, api_version: str) -> dict[str, Any]:
    """The typed metadata as the create call carries it: v2 JSON types, v1 header strings.

    ``protected`` is not among them: it is set once the image is verified, so a failed
    attempt can still delete what it made.  v1 has no tags.
    """
    sizes = {k: v for k, v in (("min_disk", metadata.min_disk),
                               ("min_ram", metadata.min_ram)) if v is not None}
    if api_version == "1":
        return {k: str(v) for k, v in sizes.items()}
    return {**sizes, **({"tags": list(metadata.tags)} if metadata.tags else {})}


def reusable(image: Image, build: BuildInfo, disk_format: str, digests: Digests) -> bool:
    """An active image of ours with the same content: a rerun uploads nothing."""
    same_data = (image.disk_format == disk_format
                 and (image.checksum is None or image.checksum == digests.md5))
    return (is_this_build(image, build) and image.status == "active"
            and image.properties.get(SHA256) == digests.sha256
            and (same_data or recorded_conversion(image, disk_format) is not None))


def converted_by_cloud(image: Image, sent_format: str, digests: Digests,
                       imported: bool) -> dict[str, Any] | None:
    """Glance's image_conversion plugin at work, not a bad upload: after an interoperable
    import of ours (our sha256 recorded at create), disk_format and size both changed."""
    if (not imported or image.disk_format in (None, sent_format)
            or image.size in (None, digests.size)
            or image.properties.get(SHA256) != digests.sha256):
        return None
    return {"from": sent_format, "to": image.disk_format, "size": image.size}


def recorded_conversion(image: Image, sent_format: str) -> dict[str, Any] | None:
    """The conversion an earlier upload recorded on the image (``CONVERTED_FROM``)."""
    if image.properties.get(CONVERTED_FROM) != sent_format or image.disk_format == sent_format:
        return None
    return {"from": sent_format, "to": image.disk_format, "size": image.size}


def checksum_problem(image: Image, digests: Digests) -> str | None:
    """None if Glance's checksum, os_hash_value and size agree with ours, else what differs."""
    if image.checksum and image.checksum != digests.md5:
        return f"md5 {image.checksum} != ours {digests.md5}"
    if image.os_hash_algo and image.os_hash_value:
        ours = digests.get(image.os_hash_algo)
        if ours and ours != image.os_hash_value:
            return f"{image.os_hash_algo} differs from ours"
    if image.size is not None and image.size != digests.size:
        return f"size {image.size} != ours {digests.size}"
    if not image.checksum and not image.os_hash_value:
        return "Glance reports no checksum"
    return None
