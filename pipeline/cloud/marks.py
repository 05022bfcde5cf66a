"""How imagefleet marks what it publishes: the build, the property names, the two tests.

An image is ours when it carries ``imagefleet_managed=true``; the other
``imagefleet_*`` properties say which build and which content.  Two questions
are asked of an image, and they differ: upload may delete only images of *this
build* (``is_this_build``); retention weighs every image imagefleet made under
the configured name (``made_by_imagefleet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.cloud.images import Image
from pipeline.core.checksums import Digests

MANAGED = "imagefleet_managed"
BUILD = "imagefleet_build"
DIGEST = "imagefleet_digest"
FORMAT = "imagefleet_format"
MD5 = "imagefleet_md5"
SHA256 = "imagefleet_sha256"
SHA512 = "imagefleet_sha512"
VERIFIED = "imagefleet_verified"      # the test boot's outcome: "true" or "false"
CONTENT = "imagefleet_content"     # the content manifest's digest (image.manifest)
STABLE = "imagefleet_stable"       # the stable name this image holds ("": none)
CONVERTED_FROM = "imagefleet_converted_from"   # the format we sent, where the cloud converted


@dataclass(frozen=True)
class BuildInfo:
    """What identifies a build in every cloud: ``<image_name>-<build_id>`` plus properties."""

    build_id: str
    digest: str           # digest of the source (base) image
    image_name: str
    content: str = ""     # the content digest: equal content, the same image to a user

    @property
    def cloud_image_name(self) -> str:
        return build_name(self.image_name, self.build_id)


def image_properties(build: BuildInfo, disk_format: str, digests: Digests,
                     extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The properties that make an image findable as ours (and by content)."""
    props = {str(k): str(v) for k, v in (extra or {}).items()}
    props.update({
        MANAGED: "true",
        BUILD: build.build_id,
        DIGEST: build.digest,
        FORMAT: disk_format,
        MD5: digests.md5,
        SHA256: digests.sha256,
        SHA512: digests.sha512,
    })
    if build.content:
        props[CONTENT] = build.content
    return props


def is_this_build(image: Image, build: BuildInfo) -> bool:
    """Ours and of this build: the only images upload may delete."""
    props = image.properties
    return props.get(MANAGED) == "true" and props.get(BUILD) == build.build_id


def awaiting_marks(image: Image, build: BuildInfo) -> bool:
    """Named as this build's image but not marked yet: an import task that may carry only
    the name made it, and the marks come by PATCH once it is active."""
    return image.name == build.cloud_image_name and MANAGED not in image.properties


def made_by_imagefleet(image: Image, image_name: str) -> bool:
    """Ours under ``image_name`` (any build), also while it holds the stable name: what
    retention may weigh (and, unless it holds the stable name, delete)."""
    return (image.properties.get(MANAGED) == "true"
            and ((image.name or "").startswith(f"{image_name}-") or holds_stable(image)))


def holds_stable(image: Image) -> bool:
    """Ours and holding the stable name (renamed to it, or marked where names stay)."""
    return image.properties.get(MANAGED) == "true" and bool(image.properties.get(STABLE))


def build_name(image_name: str, build: str) -> str:
    """An image's name while it does not hold the stable name."""
    return f"{image_name}-{build}"
