"""The Glance image record and its data, shared by v1, v2 and the import paths.

An image is a record in the store plus at most one blob. Every path that
brings data (v1 POST/PUT, v2 PUT, an import task, glance-direct) ends in
``finish``, which is where the ``stuck`` fault applies; ``check_content`` is
the format inspection of the clouds that have ``format_check``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, Received, iso, receive_file, take_fault

KIND = "image"
BASE_FIELDS = ("id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
               "os_hash_algo", "os_hash_value", "size", "virtual_size", "disk_format",
               "container_format", "min_disk", "min_ram", "owner", "tags")
# Magic bytes at the start of an image file, and the VHD footer cookie.
MAGIC = ((b"QFI\xfb", "qcow2"), (b"conectix", "vhd"), (b"vhdxfile", "vhdx"),
         (b"KDMV", "vmdk"))
INSPECTED = {fmt for _, fmt in MAGIC} | {"raw"}


# --- the image record -------------------------------------------------------------
def new_image(cloud: Cloud, owner: str, **fields) -> dict:
    now = time.time()
    doc = {"id": str(uuid.uuid4()), "name": None, "status": "queued", "visibility": "shared",
           "protected": False, "os_hidden": False, "checksum": None, "os_hash_algo": None,
           "os_hash_value": None, "size": None, "virtual_size": None, "disk_format": None,
           "container_format": None, "min_disk": 0, "min_ram": 0, "owner": owner, "tags": [],
           "created_at": now, "updated_at": now, "properties": {}, "_blob": None,
           "_staged": None, "_stuck": False}
    doc.update(fields)
    return doc


def save(cloud: Cloud, doc: dict) -> None:
    doc["updated_at"] = time.time()
    cloud.store.put_record(cloud.name, KIND, doc, doc["created_at"])


def get_image(cloud: Cloud, image_id: str) -> dict:
    doc = cloud.store.get_record(cloud.name, KIND, image_id)
    if doc is None:
        raise HTTPFault(404, f"No image found with ID {image_id}")
    return doc


def list_images(cloud: Cloud) -> list[dict]:
    return cloud.store.list_records(cloud.name, KIND)


def v2_minor(cloud: Cloud) -> int:
    """The newest Glance v2.N served: v2.6+ (import, os_hidden at 2.7) only with import,
    v2.12 (an image's task list) where ``image_import.task_list`` says so."""
    if not cloud.has("upload", "glance-direct"):
        return 5
    return 12 if cloud.personality.image_import["task_list"] else 9


def page_limit(cloud: Cloud, wanted: str | None) -> int:
    """A listing's page size: Glance's ``limit_param_default``, capped at ``api_limit_max``."""
    listing = cloud.personality.image_listing
    try:
        limit = int(wanted) if wanted is not None else listing["limit_default"]
    except ValueError as e:
        raise HTTPFault(400, "limit param must be an integer") from e
    if limit < 0:
        raise HTTPFault(400, "limit param must be positive")
    return min(limit, listing["limit_max"])


def delete_checked(request, cloud: Cloud, doc: dict) -> None:
    """DELETE as Glance answers it: 403 when protected, 409 when the store holds it."""
    if doc["protected"]:
        raise HTTPFault(403, f"Image {doc['id']} is protected and cannot be deleted.")
    if take_fault(request, "in_use", None) is not None:
        raise HTTPFault(409, f"Image {doc['id']} could not be deleted because it is in use: "
                             "The image cannot be deleted because it is in use through the "
                             "backend store outside of Glance.")
    delete_image(cloud, doc)


def delete_image(cloud: Cloud, doc: dict) -> None:
    if doc["protected"]:
        raise HTTPFault(403, f"Image {doc['id']} is protected and cannot be deleted.")
    cloud.store.delete_record(cloud.name, KIND, doc["id"])
    cloud.store.remove_blob(doc["_blob"])
    if doc["_staged"]:
        cloud.store.remove_blob(doc["_staged"]["blob"])


def check_formats(cloud: Cloud, disk_format: str | None, container_format: str | None,
                  v1: bool = False) -> None:
    """Refuse a format this cloud does not take, with the error its Glance gives."""
    p = cloud.personality
    for key, value, allowed in (("disk_format", disk_format, p.disk_formats),
                                ("container_format", container_format, p.container_formats)):
        if value is None or value in allowed:
            continue
        if v1:
            kind = key.split("_")[0]
            raise HTTPFault(400, f"Invalid {kind} format '{value}' for image.")
        raise HTTPFault(400, f"Provided object does not match schema 'image': '{value}' is not "
                             f"one of {list(allowed)}\n\nFailed validating 'enum' in "
                             f"schema['properties']['{key}']")


def render_v2(doc: dict) -> dict:
    out = {k: doc[k] for k in BASE_FIELDS}
    out.update(doc["properties"])
    out.update(created_at=iso(doc["created_at"]), updated_at=iso(doc["updated_at"]),
               self=f"/v2/images/{doc['id']}", file=f"/v2/images/{doc['id']}/file",
               schema="/v2/schemas/image")
    if doc["status"] == "active":
        out["stores"] = "file"
    return out


def render_v1(doc: dict) -> dict:
    return {"id": doc["id"], "name": doc["name"], "status": doc["status"],
            "disk_format": doc["disk_format"], "container_format": doc["container_format"],
            "size": doc["size"], "virtual_size": doc["virtual_size"],
            "checksum": doc["checksum"], "is_public": doc["visibility"] == "public",
            "protected": doc["protected"], "min_disk": doc["min_disk"],
            "min_ram": doc["min_ram"], "owner": doc["owner"],
            "created_at": iso(doc["created_at"], micro=True, zulu=False),
            "updated_at": iso(doc["updated_at"], micro=True, zulu=False),
            "deleted": False, "deleted_at": None, "properties": dict(doc["properties"])}


# --- image data ---------------------------------------------------------------------
def detect_format(path: Path) -> str:
    """The disk format a file's bytes show (magic at the start, or a VHD footer)."""
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0, 2)
        size = f.tell()
        if size >= 512:
            f.seek(size - 512)
            tail = f.read(8)
        else:
            tail = b""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return "vhd" if tail == b"conectix" else "raw"


def check_content(cloud: Cloud, doc: dict, path: Path) -> None:
    """On clouds that inspect uploads, the bytes must be what disk_format says."""
    if not cloud.personality.format_check or doc["disk_format"] not in INSPECTED:
        return
    found = detect_format(path)
    if found != doc["disk_format"]:
        raise HTTPFault(400, f"Image content does not match disk_format "
                             f"'{doc['disk_format']}': the data is {found}")
    if found == "qcow2" and qcow2_backing_file(path):
        # Glance's format inspector (oslo.utils format_inspector) refuses a backing file.
        raise HTTPFault(400, "Image failed safety checks")


def qcow2_backing_file(path: Path) -> bool:
    """The qcow2 header names a backing file (its offset, bytes 8-15, is not zero)."""
    with open(path, "rb") as f:
        f.seek(8)
        return int.from_bytes(f.read(8), "big") != 0


def stuck_state(request) -> str | None:
    """The state a ``stuck`` fault holds this request's image in, if one fires."""
    fault = take_fault(request, "stuck")
    return fault.params["state"] if fault else None


async def receive_data(request, cloud: Cloud, doc: dict, stuck: str | None = None,
                       expected_size: int | None = None,
                       expected_md5: str | None = None) -> None:
    """Stream the request body into the image: queued -> saving -> active (or killed)."""
    doc["status"] = "saving"
    save(cloud, doc)
    tmp = cloud.store.tmp_path()
    try:
        received = await receive_file(request, tmp)
        if expected_size is not None and expected_size != received.size:
            raise HTTPFault(400, f"Supplied size {expected_size} and the size of the uploaded "
                                 f"data {received.size} did not match.")
        if expected_md5 and expected_md5 != received.md5:
            raise HTTPFault(400, f"Supplied checksum {expected_md5} and checksum generated from "
                                 f"uploaded image {received.md5} did not match.")
        check_content(cloud, doc, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        kill(cloud, doc["id"])
        raise
    finish(cloud, doc, cloud.store.commit_blob(tmp), received, stuck)


def kill(cloud: Cloud, image_id: str) -> None:
    current = cloud.store.get_record(cloud.name, KIND, image_id)
    if current is not None:
        current["status"] = "killed"
        save(cloud, current)


def finish(cloud: Cloud, doc: dict, blob: str, received: Received,
           stuck: str | None = None) -> dict:
    """Attach the data and activate, unless a ``stuck`` fault holds the image back."""
    current = cloud.store.get_record(cloud.name, KIND, doc["id"])
    if current is None:                 # deleted while the data arrived
        cloud.store.remove_blob(blob)
        return doc
    if stuck == "queued":
        cloud.store.remove_blob(blob)
        current.update(status="queued", _stuck=True)
    else:
        cloud.store.remove_blob(current["_blob"])
        current.update(_blob=blob, size=received.size, checksum=received.md5,
                       os_hash_algo="sha512", os_hash_value=received.sha512,
                       virtual_size=received.size if current["disk_format"] == "raw" else None,
                       status="active")
        if stuck is not None:
            current.update(status="saving", _stuck=True)
    save(cloud, current)
    return current


