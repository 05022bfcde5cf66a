"""Publish only what changed: a build whose content equals the image already verified
in a cloud is not uploaded there again.

The content is the build's manifest digest (``marks.CONTENT``, from
``image.manifest``).  ``VERIFIED`` is written by retention after a passing test
boot, so "already verified" means a user has been able to boot that content
from this cloud.  When the content did change, the upload record carries the
changelog from the build the cloud holds now (read from that build's manifest
in the work directory, while it is kept there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.cloud.connection import Connection
from pipeline.cloud.images import Image
from pipeline.cloud.marks import (
    BUILD,
    CONTENT,
    CONVERTED_FROM,
    VERIFIED,
    BuildInfo,
    made_by_imagefleet,
)
from pipeline.cloud.upload import upload_image
from pipeline.image.manifest import Manifest, changelog, changelog_lines
from pipeline.settings.clouds import Cloud
from pipeline.settings.profile import MetadataSection

LOG = logging.getLogger(__name__)


def _verified(images: Sequence[Image], image_name: str) -> list[Image]:
    """Our active images that passed a test boot, newest first."""
    ours = [i for i in images if made_by_imagefleet(i, image_name) and i.status == "active"
            and i.properties.get(VERIFIED) == "true"]
    return sorted(ours, key=lambda i: (i.created_at or "", i.id), reverse=True)


def unchanged_image(images: Sequence[Image], build: BuildInfo,
                    disk_format: str) -> Image | None:
    """The newest verified image of ours with this build's content, in the format we send
    (or converted from it by the cloud on import)."""
    if not build.content:
        return None
    return next((i for i in _verified(images, build.image_name)
                 if i.properties.get(CONTENT) == build.content
                 and disk_format in ((i.disk_format or disk_format),
                                     i.properties.get(CONVERTED_FROM))), None)


def previous_image(images: Sequence[Image], build: BuildInfo) -> Image | None:
    """The newest verified image of another build: what this build replaces."""
    return next((i for i in _verified(images, build.image_name)
                 if i.properties.get(BUILD) != build.build_id), None)


@dataclass
class Publication:
    """What ``publish`` did in one cloud, as the upload record holds it."""

    unchanged_since: str | None = None     # the build whose image stands (nothing sent)
    changed_since: str | None = None       # the build the new image replaces
    changelog: dict[str, list] | None = None
    changes: list[str] | None = None       # changelog_lines, for the report

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


def unchanged_record(cloud: Cloud, image: Image) -> dict[str, Any]:
    """The upload record of an upload that did not happen: the standing image's facts."""
    return {"cloud": cloud.name, "image_id": image.id, "image_name": image.name,
            "mechanism": "none", "disk_format": image.disk_format or cloud.disk_format,
            "checksum": image.checksum, "size": image.size, "bytes": 0, "seconds": 0.0,
            "attempts": 0, "skipped": True}


def publish(cloud: Cloud, image_path: str | os.PathLike, build: BuildInfo, *,
            manifest_of: Callable[[str], Manifest | None],
            metadata: MetadataSection | None = None,
            connection: Connection | None = None) -> dict[str, Any]:
    """Upload ``image_path`` unless the cloud already holds a verified image of the same
    content; the record says which, or what changed since the image it replaces."""
    connection = connection or Connection(cloud)
    images = connection.glance.list_all(step="upload")
    standing = unchanged_image(images, build, cloud.disk_format)
    if standing is not None:
        since = standing.properties.get(BUILD, "?")
        LOG.info("%s: content unchanged since build %s (image %s): nothing to upload",
                 cloud.name, since, standing.id)
        return {**unchanged_record(cloud, standing),
                **Publication(unchanged_since=since).to_dict()}
    pub = Publication()
    previous = previous_image(images, build)
    if previous is not None:
        pub.changed_since = previous.properties.get(BUILD)
        old, new = manifest_of(pub.changed_since or ""), manifest_of(build.build_id)
        if old is not None and new is not None:
            pub.changelog = changelog(old, new)
            pub.changes = changelog_lines(pub.changelog)
    record = upload_image(cloud, image_path, build, connection=connection, metadata=metadata)
    return {**record.to_dict(), **pub.to_dict()}


def standing_verify_record(upload: dict[str, Any]) -> dict[str, Any] | None:
    """The verify record of an image that was not uploaded because it stands verified
    (its test boot passed on the night it was published); None: boot it now."""
    since = upload.get("unchanged_since")
    if not since:
        return None
    return {"cloud": upload.get("cloud"), "image_id": upload["image_id"], "verified": True,
            "reason": f"unchanged since build {since}, verified then",
            "unchanged_since": since}
