"""Glance v1: metadata travels in x-image-meta-* headers, data in the request body.

POST /v1/images with a body (create and upload in one call), or PUT bringing
the data to a queued image, is this API's ``put`` mechanism (direct upload). Answers carry the same
headers back (HEAD, GET) or ``{"image": {...}}`` (POST, PUT).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from localcloud import image_model as model
from localcloud.http import HTTPFault, json_response, send_parts

PREFIX = "/image/v1"
META = "x-image-meta-"
PROP = "x-image-meta-property-"
INT_FIELDS = ("size", "min_disk", "min_ram")
BOOL_FIELDS = ("is_public", "protected")
FIELDS = ("id", "name", "disk_format", "container_format", "checksum", "owner", *INT_FIELDS,
          *BOOL_FIELDS)


def _parse(headers) -> tuple[dict, dict]:
    """x-image-meta-* headers -> (fields, properties), with v1's types."""
    fields, properties = {}, {}
    for key, value in headers.items():
        key = key.lower()
        if key.startswith(PROP):
            properties[key[len(PROP):]] = value
        elif key.startswith(META):
            name = key[len(META):].replace("-", "_")
            if name in ("location", "copy_from") or key == "x-glance-api-copy-from":
                raise HTTPFault(400, "External image locations are not supported here.")
            if name not in FIELDS:
                continue
            if name in INT_FIELDS:
                try:
                    value = int(value)
                except ValueError as e:
                    raise HTTPFault(400, f"Invalid value for {name}: {value}") from e
            if name in BOOL_FIELDS:
                value = value.lower() in ("true", "1", "yes", "on")
            fields[name] = value
    return fields, properties


def _apply(doc: dict, fields: dict) -> None:
    for key, value in fields.items():
        if key == "is_public":
            doc["visibility"] = "public" if value else "private"
        elif key not in ("size", "checksum", "id"):
            doc[key] = value


def _headers(doc: dict) -> dict:
    rendered = model.render_v1(doc)
    headers = {}
    for key, value in rendered.items():
        if key == "properties" or value is None:
            continue
        headers[META + key.replace("_", "-")] = str(value)
    for key, value in rendered["properties"].items():
        headers[PROP + key] = str(value)
    return headers


def _has_body(request: web.Request) -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "").lower()


def _check_upload(cloud, doc: dict) -> None:
    if not cloud.has("upload", "put"):
        raise HTTPFault(403, "Image data upload through Glance v1 is disabled on this cloud.")
    if not doc["disk_format"]:
        raise HTTPFault(400, "Disk format is not specified.")
    if not doc["container_format"]:
        raise HTTPFault(400, "Container format is not specified.")


async def _upload(request: web.Request, cloud, doc: dict, fields: dict) -> dict:
    await model.receive_data(request, cloud, doc, stuck=model.stuck_state(request),
                             expected_size=fields.get("size"),
                             expected_md5=fields.get("checksum"))
    return model.get_image(cloud, doc["id"])


async def create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    fields, properties = _parse(request.headers)
    model.check_formats(cloud, fields.get("disk_format"), fields.get("container_format"),
                        v1=True)
    image_id = fields.get("id") or str(uuid.uuid4())
    if cloud.store.get_record(cloud.name, model.KIND, image_id):
        raise HTTPFault(409, f"An image with identifier {image_id} already exists")
    doc = model.new_image(cloud, request["token"]["project_id"], id=image_id,
                          visibility="private", properties=properties)
    _apply(doc, fields)
    if _has_body(request):
        _check_upload(cloud, doc)
    model.save(cloud, doc)
    if _has_body(request):
        doc = await _upload(request, cloud, doc, fields)
    return json_response({"image": model.render_v1(doc)}, status=201,
                         headers={"Location": f"{cloud.base_url}{PREFIX}/images/{image_id}"})


async def update(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    fields, properties = _parse(request.headers)
    model.check_formats(cloud, fields.get("disk_format"), fields.get("container_format"),
                        v1=True)
    if doc["status"] != "queued" and ("disk_format" in fields or "container_format" in fields):
        raise HTTPFault(403, "Forbidden to modify the format of an active image.")
    _apply(doc, fields)
    purge = request.headers.get("x-glance-registry-purge-props", "true").lower() != "false"
    doc["properties"] = properties if purge else {**doc["properties"], **properties}
    if _has_body(request):
        if doc["status"] != "queued":
            raise HTTPFault(409, "Cannot upload to an unqueued image")
        _check_upload(cloud, doc)
    model.save(cloud, doc)
    if _has_body(request):
        doc = await _upload(request, cloud, doc, fields)
    return json_response({"image": model.render_v1(doc)})


async def show(request: web.Request) -> web.StreamResponse:
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    headers = _headers(doc)
    if request.method == "HEAD":
        return web.Response(headers=headers)
    if not doc["_blob"] or doc["status"] != "active":
        raise HTTPFault(404, f"Image {doc['id']} has no data.")
    headers.update({"Content-Type": "application/octet-stream",
                    "x-image-meta-checksum": doc["checksum"], "ETag": doc["checksum"]})
    parts = [(cloud.store.blob_path(doc["_blob"]), 0, doc["size"])] if doc["size"] else []
    return await send_parts(request, parts, headers)


async def delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    model.delete_checked(request, cloud, model.get_image(cloud, request.match_info["image_id"]))
    return web.Response(status=200)


def _listed(request: web.Request) -> list[dict]:
    cloud = request.app["cloud"]
    query = request.query
    images = model.list_images(cloud)
    for key in ("name", "status", "disk_format", "container_format"):
        if key in query:
            images = [d for d in images if d[key] == query[key]]
    for key, value in query.items():
        if key.startswith("property-"):
            images = [d for d in images if d["properties"].get(key[9:]) == value]
    if "size_min" in query:
        images = [d for d in images if (d["size"] or 0) >= int(query["size_min"])]
    if "size_max" in query:
        images = [d for d in images if (d["size"] or 0) <= int(query["size_max"])]
    key = query.get("sort_key", "created_at")
    images.sort(key=lambda d: str(d.get(key) or ""), reverse=query.get("sort_dir") != "asc")
    if "marker" in query:
        ids = [d["id"] for d in images]
        if query["marker"] not in ids:
            raise HTTPFault(400, "Invalid marker. Image could not be found.")
        images = images[ids.index(query["marker"]) + 1:]
    return images[:model.page_limit(cloud, query.get("limit"))]


async def index(request: web.Request) -> web.Response:
    keys = ("id", "name", "disk_format", "container_format", "size", "checksum")
    images = [{k: model.render_v1(d)[k] for k in keys} for d in _listed(request)]
    return json_response({"images": images})


async def detail(request: web.Request) -> web.Response:
    return json_response({"images": [model.render_v1(d) for d in _listed(request)]})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/images", index)
    r.add_get(f"{PREFIX}/images/detail", detail)
    r.add_post(f"{PREFIX}/images", create)
    r.add_get(f"{PREFIX}/images/{{image_id}}", show)
    r.add_put(f"{PREFIX}/images/{{image_id}}", update)
    r.add_delete(f"{PREFIX}/images/{{image_id}}", delete)
