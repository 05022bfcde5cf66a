"""Glance: the image service router, its version document and its catalog entry.

Which API versions and upload paths exist is the personality's ``image_api``
and ``upload`` flags; the record and data handling live in ``image_model``.
"""

from __future__ import annotations

from aiohttp import web

from localcloud import image_import, image_v1, image_v2
from localcloud.cloud import Cloud, Service
from localcloud.http import json_response, public
from localcloud.image_model import list_images, save, v2_minor

PREFIX = "/image"


def _endpoint(cloud: Cloud, project_id: str) -> str:
    if cloud.personality.catalog == "versioned":
        return f"{cloud.base_url}{PREFIX}/v{max(cloud.personality.image_versions)}"
    return f"{cloud.base_url}{PREFIX}"


# --- version discovery ------------------------------------------------------------
def version_list(cloud: Cloud) -> list[dict]:
    """Glance's version document: v2.N newest first (v2.6+ only with import), then v1."""
    entries = []
    versions = cloud.personality.image_versions
    if 2 in versions:
        top = v2_minor(cloud)
        entries += [(f"v2.{n}", "CURRENT" if n == top else "SUPPORTED", "v2")
                    for n in range(top, -1, -1)]
    if 1 in versions:
        old = "DEPRECATED" if 2 in versions else "CURRENT"
        entries += [("v1.1", old, "v1"), ("v1.0", "DEPRECATED" if 2 in versions else "SUPPORTED",
                                          "v1")]
    return [{"id": vid, "status": status,
             "links": [{"rel": "self", "href": f"{cloud.base_url}{PREFIX}/{major}/"}]}
            for vid, status, major in entries]


@public
async def versions(request: web.Request) -> web.Response:
    status = 200 if request.path.endswith("/versions") else 300
    return json_response({"versions": version_list(request.app["cloud"])}, status=status)


def resume(cloud: Cloud) -> None:
    """An upload in flight died with the process: its image is killed, as Glance does."""
    for doc in list_images(cloud):
        if doc["status"] == "saving" and not doc["_stuck"]:
            doc["status"] = "killed"
            save(cloud, doc)
    image_import.resume(cloud)


def resources(cloud: Cloud) -> dict[str, list]:
    images = [{"id": d["id"], "name": d["name"], "status": d["status"], "size": d["size"],
               "disk_format": d["disk_format"]} for d in list_images(cloud)]
    return {"images": images}


def add_routes(app: web.Application) -> None:
    cloud = app["cloud"]
    r = app.router
    for path in (PREFIX, PREFIX + "/", PREFIX + "/versions", PREFIX + "/v1", PREFIX + "/v1/",
                 PREFIX + "/v2", PREFIX + "/v2/"):
        r.add_get(path, versions)
    if cloud.has("image_api", "v1"):
        image_v1.add_routes(app)
    if cloud.has("image_api", "v2"):
        image_v2.add_routes(app)
        image_import.add_routes(app)


SERVICE = Service(type="image", name="glance", prefix=PREFIX, endpoint=_endpoint,
                  add_routes=add_routes, resume=resume, resources=resources)
