"""Our images in one cloud, as an operator sees them: which build, verified or not, which
holds the stable name; moving the stable name (promote) and deleting a build.

Users boot by the stable name (``image.stable_name`` in pipeline.yaml).  After a
cloud's test boot passes, the new image takes it and the image that held it
goes back to its build-id name (``marks.build_name``); on a cloud whose profile
says ``image.rename: false`` names never change and only the ``STABLE``
property moves.  Either way the holder carries ``STABLE``, so retention and
``delete`` can tell it (``marks.holds_stable``).  The old holder loses the name
before the new one takes it: for a moment no image has it, rather than two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.cloud.connection import Connection
from pipeline.cloud.glance import Glance
from pipeline.cloud.images import Image
from pipeline.cloud.marks import (
    BUILD,
    CONTENT,
    STABLE,
    VERIFIED,
    build_name,
    holds_stable,
    made_by_imagefleet,
)
from pipeline.core.errors import PipelineError
from pipeline.settings.clouds import Cloud

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    image: Image
    name: str | None      # the new name (None: unchanged)
    stable: str           # the STABLE property's new value ("": holds nothing)


def promotion(images: Sequence[Image], target: Image, *, stable_name: str,
              image_name: str, rename: bool) -> list[Change]:
    """What gives ``target`` the stable name: the other holders first, then the target."""
    changes = []
    for image in images:
        if image.id != target.id and holds_stable(image):
            back = build_name(image_name, image.properties.get(BUILD, image.id))
            changes.append(Change(image, back if rename and image.name != back else None, ""))
    wanted_name = stable_name if rename else None
    if (target.properties.get(STABLE) != stable_name
            or (wanted_name and target.name != wanted_name)):
        changes.append(Change(target, wanted_name if target.name != wanted_name else None,
                              stable_name))
    return changes


def apply(glance: Glance, changes: Sequence[Change]) -> None:
    for change in changes:
        glance.set_properties(change.image, {STABLE: change.stable})
        change.image.properties[STABLE] = change.stable
        if change.name is not None:
            glance.rename(change.image, change.name)
        LOG.info("%s: image %s %s", glance.where, change.image.id,
                 f"takes the stable name {change.stable!r}" if change.stable
                 else f"back to {change.image.name!r}")


def our_images(images: Sequence[Image], image_name: str) -> list[Image]:
    """Ours under ``image_name``, newest first."""
    return sorted((i for i in images if made_by_imagefleet(i, image_name)),
                  key=lambda i: (i.created_at or "", i.id), reverse=True)


def of_build(images: Sequence[Image], image_name: str, build: str) -> list[Image]:
    return [i for i in our_images(images, image_name) if i.properties.get(BUILD) == build]


def describe(image: Image) -> dict[str, Any]:
    """One row of ``imagefleet images``."""
    return {"build": image.properties.get(BUILD), "id": image.id, "name": image.name,
            "created": image.created_at, "size": image.size, "status": image.status,
            "verified": image.properties.get(VERIFIED) == "true",
            "stable": image.properties.get(STABLE) or None,
            "content": (image.properties.get(CONTENT) or "")[:12] or None}


def list_images(cloud: Cloud, image_name: str, connection: Connection | None = None
                ) -> list[dict[str, Any]]:
    glance = (connection or Connection(cloud)).glance
    return [describe(i) for i in our_images(glance.list_all(step="images"), image_name)]


def promote(cloud: Cloud, *, stable_name: str, image_name: str, build: str | None = None,
            image_id: str | None = None, connection: Connection | None = None
            ) -> list[Change]:
    """Give the verified image of ``build`` (or ``image_id``) the stable name."""
    glance = (connection or Connection(cloud)).glance
    images = glance.list_all(step="promote")
    ours = our_images(images, image_name)
    found = [i for i in ours if i.id == image_id] if image_id else of_build(ours, image_name,
                                                                            build or "")
    if not found:
        raise PipelineError(f"no image of build {build or image_id} here",
                            where=cloud.name, step="promote")
    target = found[0]
    if target.properties.get(VERIFIED) != "true":
        raise PipelineError(f"build {target.properties.get(BUILD)} has not passed a test "
                            "boot here; only a verified image takes the stable name",
                            where=cloud.name, step="promote")
    changes = promotion(ours, target, stable_name=stable_name, image_name=image_name,
                        rename=cloud.profile.image.rename)
    apply(glance, changes)
    return changes


def delete_build(cloud: Cloud, *, image_name: str, build: str,
                 connection: Connection | None = None) -> list[str]:
    """Delete our images of ``build``; never the one holding the stable name."""
    glance = (connection or Connection(cloud)).glance
    found = of_build(glance.list_all(step="delete"), image_name, build)
    if not found:
        raise PipelineError(f"no image of build {build} here", where=cloud.name,
                            step="delete")
    holding = [i for i in found if holds_stable(i)]
    if holding:
        raise PipelineError(f"build {build} holds the stable name "
                            f"{holding[0].properties.get(STABLE)!r}; promote another build "
                            "first", where=cloud.name, step="delete")
    return [i.id for i in found if glance.delete(i.id)]
