"""Retention: after a good verify, keep the newest N of our images in a cloud.

Only images that carry our marker (``imagefleet_managed=true``) and our name
prefix are candidates; the image just published is always kept; nothing else
in the project is ever touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from keystoneauth1 import session as ksa_session

from pipeline.clouds import Cloud
from pipeline.discovery import discover_image_api
from pipeline.glance import Glance, Image
from pipeline.session import make_session
from pipeline.upload import MANAGED

LOG = logging.getLogger(__name__)


def is_ours(image: Image, image_name: str) -> bool:
    return (image.properties.get(MANAGED) == "true"
            and (image.name or "").startswith(f"{image_name}-"))


def images_to_delete(images: Sequence[Image], *, keep: int, image_name: str,
                     current_id: str | None) -> list[Image]:
    """Our images beyond the newest ``keep`` (the current one always counts as kept)."""
    ours = sorted((i for i in images if is_ours(i, image_name)),
                  key=lambda i: (i.id == current_id, i.created_at or "", i.id), reverse=True)
    return [i for i in ours[max(keep, 1):] if i.id != current_id]


def apply_retention(cloud: Cloud, *, keep: int, image_name: str, current_id: str | None,
                    session: ksa_session.Session | None = None) -> list[str]:
    """Delete our older images in ``cloud``; returns the ids deleted."""
    session = session or make_session(cloud.config)
    glance = Glance(discover_image_api(session, cloud.config,
                                       cloud.profile.get("image.api_version")), cloud.name)
    doomed = images_to_delete(glance.list_all(), keep=keep, image_name=image_name,
                              current_id=current_id)
    deleted = [i.id for i in doomed if glance.delete(i.id)]
    LOG.info("%s: retention kept %d, deleted %d of our images", cloud.name, keep, len(deleted))
    return deleted
