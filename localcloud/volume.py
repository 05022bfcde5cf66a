"""Cinder v3 (a subset): volumes made from Glance images, for servers that boot from them.

``POST /v3/{project}/volumes`` with ``imageRef`` and ``size`` (GiB) checks what
Cinder's API flow checks at once (the image's size and ``min_disk`` against
the volume's size: 400) and the quotas (413 ``overLimit``), answers 202 with
``creating``, then in the background goes ``downloading`` and copies the
image's bytes into a raw volume file with ``qemu-img convert`` as Cinder's
``fetch_to_raw`` does; an image whose virtual size does not fit makes the
volume ``error`` there, as Cinder's ``check_virtual_size`` does.  Nova marks a
volume ``in-use`` when a server boots from it (``compute_volumes``); deleting
an ``in-use`` (or unfinished) volume is Cinder's 400.  Only the base v3
microversion is served.  docs/vendor-behaviour.md "Boot from volume".
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import time
import uuid
from pathlib import Path

from aiohttp import web

from localcloud import quotas
from localcloud.cloud import Cloud, Service
from localcloud.http import ERROR_BODIES, HTTPFault, iso, json_response, public, read_json
from qemuhost.formats import QEMU_DRIVERS

PREFIX = "/volume"
API = f"{PREFIX}/v3/{{project_id}}"
KIND = "volume"
GIB = 1 << 30
QEMU_IMG = "qemu-img"
ERROR_NAMES = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 413: "overLimit"}
# cinder/volume/api.py delete(): what a volume must be to be deleted
DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
NOT_DELETABLE = ("Invalid volume: Volume status must be available or error or error_restoring "
                 "or error_extending or error_managing and must not be migrating, attached, "
                 "belong to a group, have snapshots, awaiting a transfer, or be disassociated "
                 "from snapshots after volume transfer.")


def cinder_error(status: int, message: str, kind: str | None) -> dict:
    return {kind or ERROR_NAMES.get(status, "computeFault"): {"message": message,
                                                               "code": status}}


ERROR_BODIES["block-storage"] = cinder_error


def endpoint(cloud: Cloud, project_id: str) -> str:
    return f"{cloud.base_url}{PREFIX}/v3/{project_id}"


# --- versions -------------------------------------------------------------------------
def version_doc(cloud: Cloud) -> dict:
    return {"id": "v3.0", "status": "CURRENT", "version": "3.0", "min_version": "3.0",
            "updated": "2016-02-08T12:20:21Z",
            "links": [{"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"},
                      {"rel": "self", "href": f"{cloud.base_url}{PREFIX}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}]}


@public
async def versions(request: web.Request) -> web.Response:
    return json_response({"versions": [version_doc(request.app["cloud"])]})


# --- the model ------------------------------------------------------------------------
def volume_file(cloud: Cloud, volume_id: str) -> Path:
    return cloud.store.root / "volumes" / cloud.name / f"{volume_id}.raw"


def get(cloud: Cloud, volume_id: object) -> dict | None:
    if not isinstance(volume_id, str) or not volume_id:
        return None
    return cloud.store.get_record(cloud.name, KIND, volume_id)


def all_volumes(cloud: Cloud) -> list[dict]:
    return cloud.store.list_records(cloud.name, KIND)


def save(cloud: Cloud, doc: dict) -> None:
    doc["updated_at"] = iso(time.time(), micro=True, zulu=False)
    cloud.store.put_record(cloud.name, KIND, doc, doc["_created"])


def _found(cloud: Cloud, volume_id: str) -> dict:
    doc = get(cloud, volume_id)
    if doc is None:
        raise HTTPFault(404, f"Volume {volume_id} could not be found.")
    return doc


def view(request: web.Request, doc: dict, detail: bool = True) -> dict:
    cloud: Cloud = request.app["cloud"]
    pid = request.match_info.get("project_id", "")
    links = [{"rel": "self", "href": f"{endpoint(cloud, pid)}/volumes/{doc['id']}"},
             {"rel": "bookmark", "href": f"{cloud.base_url}{PREFIX}/{pid}/volumes/{doc['id']}"}]
    shown = {"id": doc["id"], "name": doc["name"], "links": links}
    if not detail:
        return shown
    shown.update({key: doc[key] for key in (
        "status", "size", "description", "created_at", "updated_at", "attachments",
        "metadata", "user_id", "volume_image_metadata")})
    shown.update({"availability_zone": "nova", "bootable": str(doc["bootable"]).lower(),
                  "encrypted": False, "multiattach": False, "volume_type": "__DEFAULT__",
                  "snapshot_id": None, "source_volid": None, "consistencygroup_id": None,
                  "replication_status": None, "migration_status": None,
                  "os-vol-tenant-attr:tenant_id": doc["project_id"]})
    return shown


# --- create ---------------------------------------------------------------------------
def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or \
            not str(value).isdigit() or int(value) < 1:
        raise HTTPFault(400, f"Invalid input for field/attribute size. Value: {value}. "
                             f"{value!r} is not valid under any of the given schemas")
    return int(value)


def _image(cloud: Cloud, ref: object, size: int) -> dict | None:
    """cinder/volume/flows/api/create_volume.py ``_check_image_metadata``."""
    if not ref:
        return None
    image = cloud.store.get_record(cloud.name, "image", str(ref))
    if image is None:
        raise HTTPFault(404, f"Image {ref} could not be found.")
    if image["status"] != "active":
        raise HTTPFault(400, f"Invalid input received: Image {ref} is not active.")
    image_gb = math.ceil((image["size"] or 0) / GIB)
    if image_gb > size:
        raise HTTPFault(400, f"Invalid input received: Size of specified image {image_gb}GB "
                             f"is larger than volume size {size}GB.")
    if size < int(image["min_disk"] or 0):
        raise HTTPFault(400, f"Invalid input received: Volume size {size}GB cannot be smaller "
                             f"than the image minDisk size {image['min_disk']}GB.")
    return image


def _quota(request: web.Request, size: int) -> None:
    """cinder/quota_utils.py ``process_reserve_over_quota``: 413 ``overLimit``."""
    over = quotas.exceeded(request, "gigabytes", size)
    if over:
        raise HTTPFault(413, f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot "
                             f"exceeds allowed gigabytes quota. Requested {size}G, quota is "
                             f"{over[1]}G and {over[0]}G has been consumed.")
    over = quotas.exceeded(request, "volumes")
    if over:
        raise HTTPFault(413, f"VolumeLimitExceeded: Maximum number of volumes allowed "
                             f"({over[1]}) exceeded for quota 'volumes'.")


async def create(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    body = (await read_json(request) or {}).get("volume")
    if not isinstance(body, dict):
        raise HTTPFault(400, "Missing required element 'volume' in request body.")
    size = _size(body.get("size"))
    image = _image(cloud, body.get("imageRef"), size)
    _quota(request, size)
    now = time.time()
    doc = {"id": str(uuid.uuid4()), "name": body.get("name"), "status": "creating",
           "size": size, "description": body.get("description"),
           "created_at": iso(now, micro=True, zulu=False), "updated_at": None,
           "attachments": [], "metadata": body.get("metadata") or {},
           "user_id": cloud.credentials["user_id"],
           "project_id": cloud.credentials["project_id"], "bootable": False,
           "volume_image_metadata": None, "_created": now, "_image": image and image["id"]}
    save(cloud, doc)
    cloud.spawn(_populate(cloud, doc["id"]))
    return json_response({"volume": view(request, doc)}, status=202)


async def _populate(cloud: Cloud, volume_id: str) -> None:
    doc = get(cloud, volume_id)
    if doc is None:
        return
    path = volume_file(cloud, volume_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = cloud.store.get_record(cloud.name, "image", doc["_image"]) if doc["_image"] \
        else None
    if image is not None:
        doc["status"] = "downloading"
        save(cloud, doc)
    try:
        await asyncio.to_thread(_write, cloud, image, path, doc["size"])
    except (OSError, RuntimeError, ValueError) as e:
        doc.update(status="error", _fault=str(e))
        save(cloud, doc)
        path.unlink(missing_ok=True)
        return
    doc = get(cloud, volume_id)
    if doc is None:
        path.unlink(missing_ok=True)
        return
    if image is not None:
        doc.update(bootable=True, volume_image_metadata={
            "image_id": image["id"], "image_name": image["name"] or "",
            "disk_format": image["disk_format"], "container_format": image["container_format"],
            "min_disk": str(image["min_disk"] or 0), "min_ram": str(image["min_ram"] or 0),
            "size": str(image["size"])})
    doc["status"] = "available"
    save(cloud, doc)


def _write(cloud: Cloud, image: dict | None, path: Path, size: int) -> None:
    """The volume's bytes: the image as raw (cinder/image/image_utils.py ``fetch_to_raw``)."""
    if image is not None:
        source = cloud.store.blob_path(image["_blob"])
        fmt = QEMU_DRIVERS.get(image["disk_format"], image["disk_format"])
        info = json.loads(_qemu_img("info", "--output=json", "-f", fmt, str(source)))
        virtual_gb = math.ceil(int(info["virtual-size"]) / GIB)
        if virtual_gb > size:        # check_virtual_size: ImageUnacceptable
            raise ValueError(f"Image {image['id']} is unacceptable: Image virtual size is "
                             f"{virtual_gb}GB and doesn't fit in a volume of size {size}GB.")
        _qemu_img("convert", "-q", "-f", fmt, "-O", "raw", str(source), str(path))
    with open(path, "ab") as f:
        f.truncate(size * GIB)           # sparse: the rest of the volume reads zeros


def _qemu_img(*args: str) -> str:
    done = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"qemu-img {args[0]} exited {done.returncode}: "
                           f"{done.stderr.strip()[-300:]}")
    return done.stdout


# --- read and delete ------------------------------------------------------------------
async def show(request: web.Request) -> web.Response:
    doc = _found(request.app["cloud"], request.match_info["volume_id"])
    return json_response({"volume": view(request, doc)})


async def listing(request: web.Request) -> web.Response:
    docs = all_volumes(request.app["cloud"])
    for key in ("name", "status"):
        if key in request.query:
            docs = [d for d in docs if d[key] == request.query[key]]
    detail = request.path.endswith("/detail")
    return json_response({"volumes": [view(request, d, detail) for d in docs]})


async def delete(request: web.Request) -> web.Response:
    cloud: Cloud = request.app["cloud"]
    doc = _found(cloud, request.match_info["volume_id"])
    if doc["status"] not in DELETABLE or doc["attachments"]:
        raise HTTPFault(400, NOT_DELETABLE)
    doc["status"] = "deleting"
    save(cloud, doc)
    cloud.spawn(asyncio.to_thread(remove, cloud, doc["id"]))
    return web.Response(status=202)


def remove(cloud: Cloud, volume_id: str) -> None:
    volume_file(cloud, volume_id).unlink(missing_ok=True)
    cloud.store.delete_record(cloud.name, KIND, volume_id)


# --- what Nova asks -----------------------------------------------------------------------
def attach(cloud: Cloud, volume_id: str, server_id: str) -> None:
    doc = get(cloud, volume_id)
    if doc is not None:
        aid = str(uuid.uuid4())
        doc["status"] = "in-use"
        doc["attachments"] = [{"id": volume_id, "attachment_id": aid, "volume_id": volume_id,
                               "server_id": server_id, "host_name": None, "device": "/dev/vda",
                               "attached_at": iso(time.time(), micro=True, zulu=False)}]
        save(cloud, doc)


def detach(cloud: Cloud, volume_id: str, server_id: str) -> dict | None:
    doc = get(cloud, volume_id)
    if doc is not None:
        doc["attachments"] = [a for a in doc["attachments"] if a["server_id"] != server_id]
        if not doc["attachments"] and doc["status"] == "in-use":
            doc["status"] = "available"
        save(cloud, doc)
    return doc


# --- plumbing -------------------------------------------------------------------------
def resume(cloud: Cloud) -> None:
    """A volume being written when the process died is ``error``, as Cinder's restart does."""
    for doc in all_volumes(cloud):
        if doc["status"] in ("creating", "downloading"):
            doc.update(status="error", _fault="the local cloud stopped while creating it")
            save(cloud, doc)
        elif doc["status"] == "deleting":
            remove(cloud, doc["id"])


def resources(cloud: Cloud) -> dict[str, list]:
    return {"volumes": [{"id": d["id"], "name": d["name"], "status": d["status"],
                         "size": d["size"]} for d in all_volumes(cloud)]}


def add_routes(app: web.Application) -> None:
    r = app.router
    for path in (PREFIX, PREFIX + "/", f"{PREFIX}/v3", f"{PREFIX}/v3/"):
        r.add_get(path, versions)
    r.add_get(f"{API}/volumes", listing)
    r.add_get(f"{API}/volumes/detail", listing)
    r.add_post(f"{API}/volumes", create)
    r.add_get(f"{API}/volumes/{{volume_id}}", show)
    r.add_delete(f"{API}/volumes/{{volume_id}}", delete)


SERVICE = Service(type="block-storage", name="cinderv3", prefix=PREFIX, endpoint=endpoint,
                  add_routes=add_routes, resume=resume, resources=resources)
