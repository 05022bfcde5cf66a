"""Glance v2: images (create, list with filters, show, JSON-patch, delete) and data.

Direct data upload (PUT .../file) is this API's ``put`` mechanism; a cloud without it
refuses the upload, as a task-only cloud does.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from aiohttp import web

from localcloud import image_model as model
from localcloud.http import (
    HTTPFault,
    json_response,
    read_json,
    send_parts,
)

PREFIX = "/image/v2"
PATCH_TYPES = ("application/openstack-images-v2.1-json-patch",
               "application/openstack-images-v2.0-json-patch")
READ_ONLY = {"id", "status", "checksum", "os_hash_algo", "os_hash_value", "size",
             "virtual_size", "created_at", "updated_at", "self", "file", "schema",
             "locations", "direct_url", "stores"}
SETTABLE = {"name": (str, type(None)), "visibility": str, "protected": bool, "os_hidden": bool,
            "min_disk": int, "min_ram": int, "tags": list, "disk_format": (str, type(None)),
            "container_format": (str, type(None)), "owner": (str, type(None))}
VISIBILITIES = ("public", "private", "shared", "community")
FILTERS = {"name", "status", "visibility", "disk_format", "container_format", "owner", "id"}


JSON_TYPES = {str: "string", int: "integer", bool: "boolean", list: "array"}
HIDDEN_SINCE = 7              # os_hidden is an image attribute from Image API v2.7 on


def _settable(cloud) -> dict:
    """The typed image attributes this cloud's v2.N knows; the rest are string properties."""
    if model.v2_minor(cloud) >= HIDDEN_SINCE:
        return SETTABLE
    return {k: v for k, v in SETTABLE.items() if k != "os_hidden"}


def _type_error(key: str, value: object, typ) -> HTTPFault:
    name = JSON_TYPES.get(typ[0] if isinstance(typ, tuple) else typ, "string")
    return HTTPFault(400, f"Provided object does not match schema 'image': {value!r} is not "
                          f"of type '{name}'\n\nFailed validating 'type' in "
                          f"schema['properties']['{key}']")


def _value(cloud, key: str, value: object) -> object:
    """Check one value against the image schema, as Glance does; 400 if it does not fit."""
    if key in _settable(cloud):
        typ = SETTABLE[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise _type_error(key, value, typ)
        if key == "visibility" and value not in VISIBILITIES:
            raise HTTPFault(400, f"Invalid visibility value: {value}")
        if key in ("min_disk", "min_ram") and value < 0:
            raise HTTPFault(400, f"{key} must be non-negative")
        if key == "tags" and not all(isinstance(t, str) for t in value):
            raise HTTPFault(400, "Tags must be strings")
        if key == "disk_format":
            model.check_formats(cloud, value, None)
        if key == "container_format":
            model.check_formats(cloud, None, value)
    elif not isinstance(value, str):
        raise _type_error(key, value, str)
    return value


def _import_headers(cloud) -> dict:
    if cloud.has("upload", "glance-direct"):
        return {"OpenStack-image-import-methods": "glance-direct"}
    return {}


async def create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise HTTPFault(400, "Image creation request body must be a JSON object")
    fields, properties = {}, {}
    for key, value in body.items():
        if key in READ_ONLY - {"id"}:
            raise HTTPFault(403, f"Attribute '{key}' is read-only.")
        target = fields if key in _settable(cloud) or key == "id" else properties
        target[key] = value if key == "id" else _value(cloud, key, value)
    if "id" in fields:
        try:
            fields["id"] = str(uuid.UUID(str(fields["id"])))
        except ValueError as e:
            raise HTTPFault(400, "id must be a UUID") from e
        if cloud.store.get_record(cloud.name, model.KIND, fields["id"]):
            raise HTTPFault(409, f"Image with identifier {fields['id']} already exists!")
    fields.setdefault("owner", request["token"]["project_id"])
    doc = model.new_image(cloud, properties=properties, **fields)
    model.save(cloud, doc)
    headers = {"Location": f"{cloud.base_url}{PREFIX}/images/{doc['id']}",
               **_import_headers(cloud)}
    return json_response(model.render_v2(doc), status=201, headers=headers)


def _matches(doc: dict, key: str, wanted: str) -> bool:
    """One list filter: a field or property equal to the value, or ``in:a,b``."""
    value = doc["properties"].get(key) if key.startswith("_") or key not in doc else doc[key]
    if value is None:
        return False
    options = wanted[3:].split(",") if wanted.startswith("in:") else [wanted]
    return (str(value).lower() if isinstance(value, bool) else str(value)) in options


def _sort(images: list[dict], query) -> list[dict]:
    keys = []
    if "sort" in query:
        for item in query["sort"].split(","):
            key, _, direction = item.partition(":")
            keys.append((key.strip(), direction.strip() or "desc"))
    else:
        keys.append((query.get("sort_key", "created_at"), query.get("sort_dir", "desc")))
    for key, direction in reversed(keys):
        if direction not in ("asc", "desc"):
            raise HTTPFault(400, f"Invalid sort direction: {direction}")
        images = sorted(images, key=lambda d: (d.get(key) is None, str(d.get(key) or "")),
                        reverse=direction == "desc")
    return images


async def index(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    query = request.query
    images = model.list_images(cloud)
    # Glance filters on the attribute: the default lists visible images only,
    # os_hidden=true the hidden ones only (glance/api/v2/images.py, db/sqlalchemy/api.py).
    hidden = query.get("os_hidden", "false").lower() == "true"
    images = [d for d in images if bool(d["os_hidden"]) == hidden]
    skip = {"limit", "marker", "sort", "sort_key", "sort_dir", "os_hidden", "tag",
            "size_min", "size_max", "member_status"}
    for key, wanted in query.items():
        if key == "visibility" and wanted == "all" or key in skip:
            continue
        images = [d for d in images if _matches(d, key, wanted)]
    for tag in query.getall("tag", []):
        images = [d for d in images if tag in d["tags"]]
    for key, test in (("size_min", lambda s, n: s >= n), ("size_max", lambda s, n: s <= n)):
        if key in query:
            bound = int(query[key])
            images = [d for d in images if d["size"] is not None and test(d["size"], bound)]
    images = _sort(images, query)
    if "marker" in query:
        ids = [d["id"] for d in images]
        if query["marker"] not in ids:
            raise HTTPFault(400, f"marker {query['marker']} could not be found.")
        images = images[ids.index(query["marker"]) + 1:]
    limit = model.page_limit(cloud, query.get("limit"))
    page = images[:limit]
    body = {"images": [model.render_v2(d) for d in page], "first": "/v2/images",
            "schema": "/v2/schemas/images"}
    if len(images) > limit and page:
        params = [(k, v) for k, v in query.items() if k not in ("marker", "limit")]
        params += [("marker", page[-1]["id"]), ("limit", str(limit))]
        body["next"] = "/v2/images?" + urlencode(params)
    return json_response(body)


async def show(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    return json_response(model.render_v2(doc), headers=_import_headers(cloud))


async def delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    model.delete_checked(request, cloud, model.get_image(cloud, request.match_info["image_id"]))
    return web.Response(status=204)


def _apply_patch(cloud, doc: dict, op: dict) -> None:
    if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
        raise HTTPFault(400, "Unable to find 'op' in JSON Schema change or it is not valid")
    path = op.get("path")
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
        raise HTTPFault(400, f"Invalid JSON pointer for this resource: '{path}'")
    key = path[1:].replace("~1", "/").replace("~0", "~")
    if key in READ_ONLY:
        raise HTTPFault(403, f"Attribute '{key}' is read-only.")
    if op["op"] != "remove" and "value" not in op:
        raise HTTPFault(400, "Operation objects must contain exactly one member named 'value'")
    if key in _settable(cloud):
        if op["op"] == "remove":
            raise HTTPFault(403, f"Attribute '{key}' is reserved.")
        if key in ("disk_format", "container_format") and doc["status"] != "queued":
            raise HTTPFault(403, f"Attribute {key} can be only replaced for a queued image.")
        doc[key] = _value(cloud, key, op["value"])
        return
    props = doc["properties"]
    if op["op"] == "replace" and key not in props:
        raise HTTPFault(409, f"Property {key} does not exist.")
    if op["op"] == "remove":
        if key not in props:
            raise HTTPFault(409, f"Property {key} does not exist.")
        del props[key]
    else:
        props[key] = _value(cloud, key, op["value"])


async def update(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    if request.content_type not in PATCH_TYPES:
        raise HTTPFault(415, f"Unsupported Content-Type; use {PATCH_TYPES[0]}",
                        headers={"Accept-Patch": ", ".join(PATCH_TYPES)})
    doc = model.get_image(cloud, request.match_info["image_id"])
    changes = await read_json(request)
    if not isinstance(changes, list):
        raise HTTPFault(400, "Request body must be a JSON array of operation objects.")
    for op in changes:
        _apply_patch(cloud, doc, op)
    model.save(cloud, doc)
    return json_response(model.render_v2(doc))


async def tag(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    value = request.match_info["tag"]
    tags = [t for t in doc["tags"] if t != value]
    doc["tags"] = tags + ([value] if request.method == "PUT" else [])
    model.save(cloud, doc)
    return web.Response(status=204)


async def upload(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    if not cloud.has("upload", "put"):
        raise HTTPFault(403, "Image data upload is not allowed on this cloud; upload the image "
                             "to object storage and create an import task.")
    doc = model.get_image(cloud, request.match_info["image_id"])
    if request.content_type != "application/octet-stream":
        raise HTTPFault(415, "Image data must be sent as application/octet-stream")
    if doc["status"] != "queued":
        raise HTTPFault(409, f"Image status transition from {doc['status']} to saving is not "
                             f"allowed")
    if not doc["disk_format"] or not doc["container_format"]:
        raise HTTPFault(400, "Properties disk_format, container_format must be set prior to "
                             "saving data.")
    await model.receive_data(request, cloud, doc, stuck=model.stuck_state(request))
    return web.Response(status=204)


async def download(request: web.Request) -> web.StreamResponse:
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    if not doc["_blob"] or doc["status"] != "active":
        return web.Response(status=204)
    headers = {"Content-Type": "application/octet-stream", "Content-MD5": doc["checksum"]}
    parts = [(cloud.store.blob_path(doc["_blob"]), 0, doc["size"])] if doc["size"] else []
    return await send_parts(request, parts, headers)


def _schema(cloud) -> dict:
    p = cloud.personality
    return {"name": "image", "additionalProperties": {"type": "string"}, "properties": {
        "id": {"type": "string"}, "name": {"type": ["null", "string"], "maxLength": 255},
        "status": {"type": "string", "readOnly": True,
                   "enum": ["queued", "saving", "active", "killed", "deleted", "uploading",
                            "importing", "pending_delete", "deactivated"]},
        "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean"}, "os_hidden": {"type": "boolean"},
        "checksum": {"type": ["null", "string"], "readOnly": True},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": True},
        "os_hash_value": {"type": ["null", "string"], "readOnly": True},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True},
        "disk_format": {"type": ["null", "string"], "enum": [None, *p.disk_formats]},
        "container_format": {"type": ["null", "string"],
                             "enum": [None, *p.container_formats]},
        "min_disk": {"type": "integer"}, "min_ram": {"type": "integer"},
        "owner": {"type": ["null", "string"]}, "tags": {"type": "array",
                                                       "items": {"type": "string"}},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}


async def schema_image(request: web.Request) -> web.Response:
    return json_response(_schema(request.app["cloud"]))


async def schema_images(request: web.Request) -> web.Response:
    return json_response({"name": "images", "properties": {
        "images": {"type": "array", "items": _schema(request.app["cloud"])},
        "schema": {"type": "string"}, "first": {"type": "string"},
        "next": {"type": "string"}}})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/images", index)
    r.add_post(f"{PREFIX}/images", create)
    r.add_get(f"{PREFIX}/images/{{image_id}}", show)
    r.add_patch(f"{PREFIX}/images/{{image_id}}", update)
    r.add_delete(f"{PREFIX}/images/{{image_id}}", delete)
    r.add_put(f"{PREFIX}/images/{{image_id}}/file", upload)
    r.add_get(f"{PREFIX}/images/{{image_id}}/file", download)
    r.add_put(f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", tag)
    r.add_delete(f"{PREFIX}/images/{{image_id}}/tags/{{tag}}", tag)
    r.add_get(f"{PREFIX}/schemas/image", schema_image)
    r.add_get(f"{PREFIX}/schemas/images", schema_images)
