"""Retention: after a good verify, keep the newest N of our images in a cloud.

Only images that carry our marker (``imagefleet_managed=true``) and our name
prefix are candidates; the image just published is always kept; nothing else
in the project is ever touched.  A test boot's outcome is written on the image
(``imagefleet_verified``: ``true`` after a good one, ``false`` after a failed
one), so an image that failed its test boot never takes one of the N places
of a good fallback, and goes once a newer image has passed.  Images without
the property (older releases, or a run still verifying) count as good.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.cloud.connection import Connection
from pipeline.cloud.glance import Glance, Image
from pipeline.cloud.marks import VERIFIED, made_by_imagefleet
from pipeline.core.errors import PipelineError
from pipeline.settings.clouds import Cloud

LOG = logging.getLogger(__name__)
def failed_verify(image: Image) -> bool:
    return image.properties.get(VERIFIED) == "false"


def images_to_delete(images: Sequence[Image], *, keep: int, image_name: str,
                     current_id: str | None) -> list[Image]:
    """Our images beyond the newest ``keep`` good ones (the current one always kept),
    and those that failed a test boot and are older than the current one."""
    ours = [i for i in images if made_by_imagefleet(i, image_name)]
    current = next((i for i in ours if i.id == current_id), None)
    good = sorted((i for i in ours if i.id == current_id or not failed_verify(i)),
                  key=lambda i: (i.id == current_id, i.created_at or "", i.id), reverse=True)
    doomed = [i for i in good[max(keep, 1):] if i.id != current_id]
    newest = (current.created_at or "") if current else None
    doomed += [i for i in ours if i.id != current_id and failed_verify(i)
               and (newest is None or (i.created_at or "") <= newest)]
    return sorted(doomed, key=lambda i: (i.created_at or "", i.id), reverse=True)


def mark_verified(glance: Glance, image: Image, ok: bool) -> None:
    """Write the test boot's outcome on the image."""
    glance.set_properties(image, {VERIFIED: "true" if ok else "false"})


def record_failed_verify(conn: Connection, image_id: str) -> None:
    """Best effort, after a failed test boot: the run's error line stays the one to read."""
    try:
        mark_verified(conn.glance, conn.glance.get(image_id), ok=False)
    except PipelineError as e:
        LOG.warning("%s: could not mark image %s as failing its test boot: %s",
                    conn.where, image_id, e)


def apply_retention(cloud: Cloud, *, keep: int, image_name: str, current_id: str | None,
                    connection: Connection | None = None) -> list[str]:
    """Delete our older images in ``cloud``; returns the ids deleted."""
    glance = (connection or Connection(cloud)).glance
    images = glance.list_all()
    current = next((i for i in images if i.id == current_id), None)
    if current is not None:
        mark_verified(glance, current, ok=True)
    doomed = images_to_delete(images, keep=keep, image_name=image_name,
                              current_id=current_id)
    deleted = [i.id for i in doomed if glance.delete(i.id)]
    LOG.info("%s: retention kept %d, deleted %d of our images", cloud.name, keep, len(deleted))
    return deleted
