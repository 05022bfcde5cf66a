"""Nova's side of boot from volume: the root disk a server create asks for, and its volume.

A flavor with zero disk boots only a volume-backed server: without a
``block_device_mapping_v2`` entry of ``boot_index`` 0 the create is refused
with Nova's 403 (``BootFromVolumeRequiredForZeroDiskFlavor``, nova/exception.py;
checked in nova/compute/api.py ``_validate_flavor_image_nostatus``). The entry
the local cloud takes is an existing volume (``source_type`` and
``destination_type`` ``volume``), which must be ``available``; the server marks
it ``in-use`` and its guest runs on the volume's file itself. Deleting the
server detaches the volume, and deletes it when ``delete_on_termination`` says so.
"""

from __future__ import annotations

from localcloud import volume
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault

ZERO_DISK = "Only volume-backed servers are allowed for flavors with zero disk."


def root_volume(cloud: Cloud, body: dict, flavor: dict) -> dict | None:
    """``{"id", "delete_on_termination"}`` of the volume the server boots from, or None."""
    mappings = body.get("block_device_mapping_v2")
    if mappings is not None and not (isinstance(mappings, list) and
                                     all(isinstance(m, dict) for m in mappings)):
        raise HTTPFault(400, "Invalid input for field/attribute block_device_mapping_v2.")
    root = next((m for m in mappings or [] if str(m.get("boot_index")) == "0"), None)
    if root is None or (root.get("source_type"), root.get("destination_type")) == (
            "image", "local"):
        # image-backed: no root mapping, or the image on the host's disk as stock
        # clients send it (python-openstackclient's server create --image)
        if int(flavor["disk"]) == 0:
            raise HTTPFault(403, ZERO_DISK)
        return None
    if (root.get("source_type"), root.get("destination_type")) != ("volume", "volume"):
        raise HTTPFault(400, "Block Device Mapping is Invalid: the local cloud boots only "
                             "from an existing volume (source_type and destination_type "
                             "volume).")
    if "block-storage" not in cloud.personality.services:
        raise HTTPFault(400, "Block Device Mapping is Invalid: no block storage service.")
    doc = volume.get(cloud, root.get("uuid"))
    if doc is None:
        raise HTTPFault(400, f"Block Device Mapping is Invalid: failed to get volume "
                             f"{root.get('uuid')}.")
    if doc["status"] != "available":
        raise HTTPFault(400, f"Invalid volume: volume '{doc['id']}' status must be "
                             f"'available'. Currently in '{doc['status']}'")
    on_delete = str(root.get("delete_on_termination", False)).lower() in ("true", "1")
    return {"id": doc["id"], "delete_on_termination": on_delete}


def attached(doc: dict) -> list[dict]:
    """``os-extended-volumes:volumes_attached`` of a server."""
    root = doc.get("_volume")
    return [{"id": root["id"], "delete_on_termination": root["delete_on_termination"]}] \
        if root else []


def release(cloud: Cloud, doc: dict) -> None:
    """After the server's guest stopped: detach its volume, delete it if asked."""
    root = doc.get("_volume")
    if not root:
        return
    left = volume.detach(cloud, root["id"], doc["id"])
    if left is not None and root["delete_on_termination"] and not left["attachments"]:
        volume.remove(cloud, root["id"])
