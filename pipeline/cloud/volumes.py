"""Boot from volume: whether a test boot needs one, how big, and Cinder's calls to make it.

A cloud whose flavors all have zero disk boots only volume-backed servers
(Nova's ``BootFromVolumeRequiredForZeroDiskFlavor``): the test boot then makes
a volume from the uploaded image, waits for ``available`` and boots it with
``block_device_mapping_v2``.  The choices are pure functions; ``Cinder`` holds
the calls (through the cloud's block-storage Adapter, the catalog's URL, the
v3 base API).  docs/vendor-behaviour.md "Boot from volume".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.cloud.session import Api
from pipeline.core import errors
from pipeline.core.waiting import iterate_timeout

Json = Mapping[str, Any]
GIB = 1 << 30
SETTINGS = ("auto", "always", "never")      # the profile's compute.boot_from_volume
FAILED = frozenset({"error", "error_restoring", "error_extending", "error_managing"})
# what Cinder will not delete yet (cinder/volume/api.py delete): wait for it to settle
BUSY = frozenset({"in-use", "detaching", "attaching", "reserved", "creating", "downloading"})


def usable_flavors(flavors: Sequence[Json], min_ram_mb: int, name: str | None) -> list[Json]:
    """The flavors a test boot could take: the named one, or every enabled one with the RAM."""
    if name:
        return [f for f in flavors if name in (f.get("name"), f.get("id"))]
    return [f for f in flavors if not f.get("OS-FLV-DISABLED:disabled")
            and int(f.get("ram") or 0) >= min_ram_mb]


def needs_volume(setting: str, flavors: Sequence[Json], min_ram_mb: int = 0,
                 name: str | None = None) -> bool:
    """Whether the test boot boots from a volume (pure).

    ``always``/``never`` say so; ``auto`` does when every usable flavor has a
    zero root disk, the only case Nova refuses an image-backed server.
    """
    if setting not in SETTINGS:
        raise ValueError(f"compute.boot_from_volume {setting!r} is not one of "
                         f"{', '.join(SETTINGS)}")
    if setting != "auto":
        return setting == "always"
    usable = usable_flavors(flavors, min_ram_mb, name)
    return bool(usable) and all(int(f.get("disk") or 0) == 0 for f in usable)


def volume_size_gb(virtual_size: int | None, stored_size: int | None,
                   min_disk_gb: int | None) -> int:
    """The volume's GiB: the image's virtual size rounded up, and never less than what
    Cinder checks (the stored bytes, ``min_disk``), nor 1 (pure)."""
    def gib(value: int | None) -> int:
        return math.ceil(value / GIB) if value else 0
    return max(1, gib(virtual_size), gib(stored_size), int(min_disk_gb or 0))


def root_mapping(volume_id: str) -> list[dict[str, Any]]:
    """``block_device_mapping_v2`` booting the volume; we delete it ourselves, after."""
    return [{"boot_index": 0, "uuid": volume_id, "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": False}]


class Cinder(Api):
    service = "Cinder"
    default_step = "volume"

    def create_volume(self, name: str, size_gb: int, image_id: str,
                      metadata: Mapping[str, str]) -> dict:
        return self.json("POST", "volumes", "volume", json={"volume": {
            "name": name, "size": size_gb, "imageRef": image_id, "metadata": dict(metadata),
            "description": f"imagefleet test boot of image {image_id}"}})

    def get_volume(self, volume_id: str, step: str | None = None) -> dict | None:
        resp = self.call("GET", f"volumes/{volume_id}", ok=(404,), step=step)
        return None if resp.status_code == 404 else resp.json()["volume"]

    def volumes(self) -> list[dict]:
        return self.json("GET", "volumes/detail", "volumes", step="cleanup")

    def delete_volume(self, volume_id: str) -> bool:
        """Ask for the deletion; False if it was already gone."""
        return self.call("DELETE", f"volumes/{volume_id}", ok=(404,),
                         step="cleanup").status_code != 404

    def wait_available(self, volume_id: str, image_id: str, timeout: float,
                       poll: float) -> dict:
        """The volume once ``available``; an error status is a ``BootError`` saying which."""
        status = "unknown"
        try:
            for _ in iterate_timeout(timeout, f"volume {volume_id} did not become available",
                                     wait=poll, max_wait=max(poll, 10.0)):
                volume = self.get_volume(volume_id)
                if volume is None:
                    raise errors.BootError(f"volume {volume_id} disappeared while being "
                                           "made", where=self.where, step="volume")
                status = volume.get("status", "unknown")
                if status == "available":
                    return volume
                if status in FAILED:
                    raise errors.BootError(
                        f"volume {volume_id} ({volume.get('size')} GiB) went to {status} "
                        f"while Cinder wrote image {image_id} into it",
                        where=self.where, step="volume")
        except errors.WaitTimeout as e:
            raise errors.BootError(f"volume {volume_id} was still {status} after "
                                   f"{timeout:g} s", where=self.where, step="volume") from e
        raise AssertionError("unreachable")

    def wait_gone(self, volume_id: str, timeout: float, poll: float) -> None:
        """Until Cinder no longer shows the volume; ``available`` again first when detaching."""
        for _ in iterate_timeout(timeout, f"volume {volume_id} was not deleted", wait=poll,
                                 max_wait=max(poll, 5.0), where=self.where, step="cleanup"):
            if self.get_volume(volume_id, step="cleanup") is None:
                return

    def delete_when_detached(self, volume_id: str, timeout: float, poll: float) -> bool:
        """Delete once Nova's detach shows (``in-use``/``detaching`` refuse a delete); wait
        until gone.  False if it was already gone."""
        status = None
        for _ in iterate_timeout(timeout, f"volume {volume_id} stayed attached", wait=poll,
                                 max_wait=max(poll, 5.0), where=self.where, step="cleanup"):
            volume = self.get_volume(volume_id, step="cleanup")
            if volume is None:
                return False
            status = volume.get("status")
            if status not in BUSY:
                break
        deleted = status == "deleting" or self.delete_volume(volume_id)
        self.wait_gone(volume_id, timeout, poll)
        return deleted


def image_sizes(glance: Api, version: str, image_id: str) -> tuple[int | None, int | None,
                                                                    int | None]:
    """(virtual size, stored size, min_disk) as Glance reports them (None: not said)."""
    def number(value: Any) -> int | None:
        return int(value) if str(value).isdigit() else None
    if version == "1":
        headers = glance.call("HEAD", f"images/{image_id}", step="boot").headers
        return (None, number(headers.get("x-image-meta-size")),
                number(headers.get("x-image-meta-min_disk")))
    body = glance.call("GET", f"images/{image_id}", step="boot").json()
    return number(body.get("virtual_size")), number(body.get("size")), \
        number(body.get("min_disk"))
