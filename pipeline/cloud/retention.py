"""Retention: after a good verify, keep the newest N of our images in a cloud.

Only images that carry our marker (``imagefleet_managed=true``) and our name
prefix are candidates; the image just published is always kept; nothing else
in the project is ever touched.  A test boot's outcome is written on the image
(``imagefleet_verified``: ``true`` after a good one, ``false`` after a failed
one), so an image that failed its test boot never takes one of the N places
of a good fallback, and goes once a newer image has passed.  Images without
the property (older releases, or a run still verifying) count as good.

A real store may refuse a delete: a protected image answers 403, and on Ceph
an image whose clones back servers answers 409 (glance_store's rbd driver
raises InUseByStore; docs/vendor-behaviour.md).  Such an image is skipped with
a note, hidden (``os_hidden``) where the Image API has it so it stops being
chosen by name, and the others are still deleted.  Hidden images are listed
too (``os_hidden=true``; a default v2 listing leaves them out), and a hidden
image of ours is retried every run and never takes one of the N places: the
report names it with the reason until the store lets it go.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.cloud.connection import Connection
from pipeline.cloud.glance import Glance
from pipeline.cloud.images import Image
from pipeline.cloud.marks import VERIFIED, holds_stable, made_by_imagefleet
from pipeline.core import errors
from pipeline.core.errors import PipelineError
from pipeline.settings.clouds import Cloud

LOG = logging.getLogger(__name__)

# Why a store refuses a delete, by the status Glance answers.
UNDELETABLE = {errors.Forbidden: "protected", errors.Conflict: "in use by the store"}


@dataclass
class Skipped:
    """An image retention chose but the cloud would not delete."""

    id: str
    name: str | None
    reason: str               # "protected" or "in use by the store"
    detail: str               # what Glance said
    hidden: bool = False      # os_hidden set, so it is no longer chosen by name


@dataclass
class RetentionResult:
    """What one cloud's retention did: JSON-ready for the retention record."""

    deleted: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "skipped": [asdict(s) for s in self.skipped]}


def failed_verify(image: Image) -> bool:
    return image.properties.get(VERIFIED) == "false"


def images_to_delete(images: Sequence[Image], *, keep: int, image_name: str,
                     current_id: str | None) -> list[Image]:
    """Our images beyond the newest ``keep`` good ones (the current one always kept),
    and those that failed a test boot and are older than the current one; never the
    image holding the stable name."""
    ours = [i for i in images if made_by_imagefleet(i, image_name)]
    # Hidden by an earlier run that could not delete it: tried again, never kept.
    retry = [i for i in ours if i.hidden and i.id != current_id and not holds_stable(i)]
    ours = [i for i in ours if i not in retry]
    current = next((i for i in ours if i.id == current_id), None)
    good = sorted((i for i in ours if i.id == current_id or not failed_verify(i)),
                  key=lambda i: (i.id == current_id, i.created_at or "", i.id), reverse=True)
    doomed = [i for i in good[max(keep, 1):] if i.id != current_id and not holds_stable(i)]
    newest = (current.created_at or "") if current else None
    doomed += [i for i in ours if i.id != current_id and failed_verify(i)
               and not holds_stable(i) and (newest is None or (i.created_at or "") <= newest)]
    return sorted(doomed + retry, key=lambda i: (i.created_at or "", i.id), reverse=True)


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


def _skip(glance: Glance, image: Image, error: errors.HttpError) -> Skipped:
    """Note an image the store would not delete; hide it where the API allows."""
    reason = next(r for cls, r in UNDELETABLE.items() if isinstance(error, cls))
    skipped = Skipped(id=image.id, name=image.name, reason=reason, detail=error.cause,
                      hidden=image.hidden)
    if glance.hides and not image.hidden:
        try:
            glance.hide(image)
            skipped.hidden = True
        except PipelineError as e:
            LOG.warning("%s: could not hide image %s: %s", glance.where, image.id, e)
    LOG.warning("%s: retention skipped image %s (%s)%s", glance.where, image.id, reason,
                "; hidden" if skipped.hidden else "")
    return skipped


def apply_retention(cloud: Cloud, *, keep: int, image_name: str, current_id: str | None,
                    connection: Connection | None = None) -> RetentionResult:
    """Delete our older images in ``cloud``; those the store refuses are skipped."""
    glance = (connection or Connection(cloud)).glance
    images = glance.list_all(hidden=True)
    current = next((i for i in images if i.id == current_id), None)
    if current is not None:
        mark_verified(glance, current, ok=True)
    doomed = images_to_delete(images, keep=keep, image_name=image_name,
                              current_id=current_id)
    result = RetentionResult()
    for image in doomed:
        try:
            if glance.delete(image.id):
                result.deleted.append(image.id)
        except tuple(UNDELETABLE) as e:
            result.skipped.append(_skip(glance, image, e))
    LOG.info("%s: retention kept %d, deleted %d, skipped %d of our images", cloud.name, keep,
             len(result.deleted), len(result.skipped))
    return result
