"""Glance v2 imports: tasks (``task``: the image comes from a Swift object) and
interoperable import (``glance-direct``: stage the data, then ask for the import).

An interoperable import is recorded as an ``api_image_import`` task of the image,
listed by ``GET /v2/images/{id}/tasks`` where ``image_import.task_list`` is set; a
failed one reverts the image to ``queued`` and, on a multi-store cloud only,
names the store in ``os_glance_failed_import`` (docs/vendor-behaviour.md).

Both run in the background as Glance does, so a client polls: a task goes
pending -> processing -> success/failure, a glance-direct image goes
queued -> uploading -> importing -> active. The ``task_fail`` and ``stuck``
faults are taken when the request arrives and kept with the work, so they
survive a restart of the local cloud.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from localcloud import image_conversion, image_decompression, object_large
from localcloud import image_model as model
from localcloud.cloud import Cloud
from localcloud.http import (
    CHUNK,
    Digest,
    HTTPFault,
    Received,
    iso,
    json_response,
    read_json,
    receive_file,
    take_fault,
)

PREFIX = "/image/v2"
KIND = "task"
STEP = 0.05                  # seconds between visible status changes
IMPORT_LOCK = "os_glance_import_task"   # Glance's import lock on the image (image_import)
LOCK_HOLD = 1.0               # seconds the flow goes on after the image is active
FAIL_LAG = 0.5                # seconds from a failed import's revert to its task's failure
TASK_TTL = 48 * 3600
IMAGE_FIELDS = {"min_disk": int, "min_ram": int, "visibility": str, "protected": bool,
                "tags": list}


class ImportFailure(Exception):
    """The import cannot complete; the message is what the task reports."""


def render_task(doc: dict, brief: bool = False) -> dict:
    out = {"id": doc["id"], "type": doc["type"], "status": doc["status"], "owner": doc["owner"],
           "created_at": iso(doc["created_at"]), "updated_at": iso(doc["updated_at"]),
           "expires_at": iso(doc["expires_at"]), "self": f"/v2/tasks/{doc['id']}",
           "schema": "/v2/schemas/task"}
    if not brief:
        out.update(input=doc["input"], result=doc["result"], message=doc["message"])
    if doc.get("image_id"):
        out["image_id"] = doc["image_id"]
    return out


def _save_task(cloud: Cloud, doc: dict, **changes) -> None:
    doc.update(changes, updated_at=time.time())
    cloud.store.put_record(cloud.name, KIND, doc, doc["created_at"])


async def task_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    if not cloud.has("upload", "task"):
        raise HTTPFault(403, "You are not authorized to complete tasks_api_access action.")
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("type") != "import":
        kind = body.get("type") if isinstance(body, dict) else None
        raise HTTPFault(400, f"Invalid type value: {kind}")
    task_input = body.get("input")
    if not isinstance(task_input, dict) or not isinstance(task_input.get("import_from"), str):
        raise HTTPFault(400, "Invalid input: import_from is required")
    if not isinstance(task_input.get("image_properties", {}), dict):
        raise HTTPFault(400, "Invalid input: image_properties must be an object")
    fail = take_fault(request, "task_fail")
    now = time.time()
    doc = {"id": str(uuid.uuid4()), "type": "import", "status": "pending", "input": task_input,
           "result": None, "message": "", "owner": request["token"]["project_id"],
           "created_at": now, "updated_at": now, "expires_at": None, "_image": None,
           "_fail": (fail.params.get("message") or "Image import failed") if fail else None,
           "_stuck": model.stuck_state(request)}
    _save_task(cloud, doc)
    cloud.spawn(run_task(cloud, doc["id"]))
    return json_response(render_task(doc), status=201)


async def task_list(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    tasks = cloud.store.list_records(cloud.name, KIND)
    for key in ("type", "status"):
        if key in request.query:
            tasks = [t for t in tasks if t[key] == request.query[key]]
    return json_response({"tasks": [render_task(t, brief=True) for t in reversed(tasks)],
                          "first": "/v2/tasks", "schema": "/v2/schemas/tasks"})


async def task_show(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    doc = cloud.store.get_record(cloud.name, KIND, request.match_info["task_id"])
    if doc is None:
        raise HTTPFault(404, f"Task with identifier {request.match_info['task_id']} not found")
    return json_response(render_task(doc))


def _copy_parts(parts: list, tmp) -> Received:
    """Concatenate file ranges (a Swift object's content) into ``tmp``, hashing."""
    digest = Digest()
    with open(tmp, "wb") as out:
        for path, offset, length in parts:
            with open(path, "rb") as f:
                f.seek(offset)
                remaining = length
                while remaining > 0:
                    data = f.read(min(CHUNK, remaining))
                    if not data:
                        break
                    out.write(data)
                    digest.update(data)
                    remaining -= len(data)
    return digest.result()


def _new_image_from(cloud: Cloud, task: dict) -> dict:
    """The image record an import task makes, from its input; failures are the task's."""
    task_input = task["input"]
    props = {k: v for k, v in (task_input.get("image_properties") or {}).items()}
    extra = sorted(set(props) - {"name"})
    if extra and cloud.personality.task_image_properties == "name":
        raise ImportFailure("Image import failed: name is the only property allowed in "
                            f"image_properties, not {', '.join(extra)}")
    disk_format = (task_input.get("import_from_format") or props.pop("disk_format", None)
                   or cloud.personality.disk_formats[0])
    container_format = props.pop("container_format", None) or cloud.personality.container_formats[0]
    try:
        model.check_formats(cloud, disk_format, container_format)
    except HTTPFault as e:
        raise ImportFailure(f"Image import failed: {e.message.splitlines()[0]}") from e
    fields = {k: props.pop(k) for k in list(props)
              if k in IMAGE_FIELDS and isinstance(props[k], IMAGE_FIELDS[k])}
    return model.new_image(cloud, task["owner"], name=props.pop("name", None),
                           disk_format=disk_format, container_format=container_format,
                           status="saving", properties={k: str(v) for k, v in props.items()},
                           **fields)


async def _import_from_swift(cloud: Cloud, task: dict) -> dict | None:
    source = task["input"]["import_from"].removeprefix("swift://")
    container, _, name = source.partition("/")
    if not (container and name) or "object-store" not in cloud.personality.services:
        raise ImportFailure(f"Image import failed: invalid import_from '{source}'")
    obj = object_large.lookup(cloud, f"AUTH_{task['owner']}", container, name)
    if obj is None:
        raise ImportFailure(f"Image import failed: Swift object {source} not found")
    try:
        parts = object_large.object_parts(cloud, obj)
    except HTTPFault as e:
        raise ImportFailure(f"Image import failed: {e.message}") from e
    image = _new_image_from(cloud, task)
    model.save(cloud, image)
    _save_task(cloud, task, _image=image["id"])
    tmp = cloud.store.tmp_path()
    try:
        received = await asyncio.to_thread(_copy_parts, parts, tmp)
        model.check_content(cloud, image, tmp)
    except HTTPFault as e:
        tmp.unlink(missing_ok=True)
        raise ImportFailure(f"Image import failed: {e.message}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return model.finish(cloud, image, cloud.store.commit_blob(tmp), received, task["_stuck"])


def _drop_image(cloud: Cloud, image_id: str | None) -> None:
    doc = cloud.store.get_record(cloud.name, model.KIND, image_id) if image_id else None
    if doc is not None:
        doc["protected"] = False
        model.delete_image(cloud, doc)


async def run_task(cloud: Cloud, task_id: str) -> None:
    await asyncio.sleep(STEP)
    task = cloud.store.get_record(cloud.name, KIND, task_id)
    if task is None:
        return
    _drop_image(cloud, task["_image"])         # left over from a run cut by a restart
    _save_task(cloud, task, status="processing", _image=None)
    await asyncio.sleep(STEP)
    try:
        if task["_fail"] is not None:
            raise ImportFailure(task["_fail"])
        image = await _import_from_swift(cloud, task)
    except (ImportFailure, OSError) as e:
        _drop_image(cloud, task["_image"])
        _save_task(cloud, task, status="failure", message=str(e), _image=None,
                   expires_at=time.time() + TASK_TTL)
        return
    if task["_stuck"] is None:
        _save_task(cloud, task, status="success", result={"image_id": image["id"]},
                   expires_at=time.time() + TASK_TTL)


# --- interoperable import: glance-direct --------------------------------------------
def _interop(cloud: Cloud) -> None:
    if not cloud.has("upload", "glance-direct"):
        raise HTTPFault(404, "The resource could not be found.")


async def import_info(request: web.Request) -> web.Response:
    _interop(request.app["cloud"])
    return json_response({"import-methods": {"description": "Import methods available.",
                                             "type": "array", "value": ["glance-direct"]}})


async def stage(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    _interop(cloud)
    doc = model.get_image(cloud, request.match_info["image_id"])
    if request.content_type != "application/octet-stream":
        raise HTTPFault(415, "Image data must be sent as application/octet-stream")
    if doc["status"] != "queued":
        raise HTTPFault(409, f"Image status transition from {doc['status']} to uploading is "
                             f"not allowed")
    doc["status"] = "uploading"
    model.save(cloud, doc)
    tmp = cloud.store.tmp_path()
    try:
        received = await receive_file(request, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        doc["status"] = "queued"
        model.save(cloud, doc)
        raise
    doc["_staged"] = {"blob": cloud.store.commit_blob(tmp), "size": received.size,
                      "md5": received.md5, "sha512": received.sha512}
    model.save(cloud, doc)
    return web.Response(status=204)


async def import_image(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    _interop(cloud)
    doc = model.get_image(cloud, request.match_info["image_id"])
    body = await read_json(request)
    method = ((body or {}).get("method") or {}).get("name") if isinstance(body, dict) else None
    if method != "glance-direct":
        raise HTTPFault(400, f"Import method {method} is not valid for this cloud. Valid "
                             f"values are: glance-direct")
    if doc["status"] != "uploading" or not doc["_staged"]:
        raise HTTPFault(409, "Image needs to be staged before 'glance-direct' method can be "
                             "used")
    fail = take_fault(request, "task_fail")
    task = _image_task(cloud, doc, request["token"]["project_id"], body)
    doc["_import"] = {"fail": (fail.params.get("message") or "import failed") if fail else None,
                      "stuck": model.stuck_state(request), "task": task["id"]}
    doc["status"] = "importing"
    if cloud.personality.image_import["import_lock"]:
        doc["properties"][IMPORT_LOCK] = task["id"]
    if _multi_store(cloud):
        doc["properties"]["os_glance_importing_to_stores"] = "local"
    model.save(cloud, doc)
    cloud.spawn(run_import(cloud, doc["id"]))
    return web.Response(status=202)


def _multi_store(cloud: Cloud) -> bool:
    return cloud.personality.image_import["stores"] == "multi"


def _image_task(cloud: Cloud, doc: dict, owner: str, body: dict) -> dict:
    """The ``api_image_import`` task Glance records for an import request."""
    now = time.time()
    task = {"id": str(uuid.uuid4()), "type": "api_image_import", "status": "pending",
            "input": {"image_id": doc["id"], "import_req": body, "backend": ["local"]},
            "result": None, "message": "", "owner": owner, "image_id": doc["id"],
            "created_at": now, "updated_at": now, "expires_at": None}
    _save_task(cloud, task)
    return task


def _set_task(cloud: Cloud, task_id: str | None, status: str, message: str = "") -> None:
    """Move an image's import task on; a finished one expires after ``TASK_TTL``."""
    task = cloud.store.get_record(cloud.name, KIND, task_id) if task_id else None
    if task is not None:
        ends = time.time() + TASK_TTL if status in ("success", "failure") else None
        _save_task(cloud, task, status=status, message=message, expires_at=ends)


async def image_tasks(request: web.Request) -> web.Response:
    """GET /v2/images/{id}/tasks (Image API v2.12): the image's import tasks, newest first."""
    cloud = request.app["cloud"]
    doc = model.get_image(cloud, request.match_info["image_id"])
    tasks = [t for t in cloud.store.list_records(cloud.name, KIND)
             if t.get("image_id") == doc["id"]]
    tasks.sort(key=lambda t: t["created_at"], reverse=True)
    return json_response({"tasks": [render_task(t) for t in tasks]})


async def run_import(cloud: Cloud, image_id: str) -> None:
    await asyncio.sleep(STEP)
    doc = cloud.store.get_record(cloud.name, model.KIND, image_id)
    if doc is None or doc["status"] != "importing":
        return
    plan = doc.pop("_import", None) or {"fail": None, "stuck": None}
    _set_task(cloud, plan.get("task"), "processing")
    staged = doc["_staged"]
    blob, received = staged["blob"], Received(staged["size"], staged["md5"], staged["sha512"])
    failure = plan["fail"]
    try:
        if failure is None:
            inflated = image_decompression.applies(cloud, doc, cloud.store.blob_path(blob))
            if inflated:
                blob, received = await image_decompression.decompress(cloud, blob)
            model.check_content(cloud, doc, cloud.store.blob_path(blob))
            converted = image_conversion.target_format(cloud, doc["disk_format"]) is not None
            blob, received = await image_conversion.convert_blob(cloud, doc, blob, received)
            if (inflated and not converted
                    and not cloud.personality.image_import["decompress_sets_size"]):
                # Glance before 2026.1: the stage's (compressed) size stays on the image.
                raise image_decompression.DecompressionFailed(image_decompression.SIZE_KEPT)
    except HTTPFault as e:
        failure = e.message
    except (image_conversion.ConversionFailed, image_decompression.DecompressionFailed) as e:
        failure = str(e)
    doc["_staged"] = None
    doc["properties"].pop("os_glance_importing_to_stores", None)
    if failure is not None:
        cloud.store.remove_blob(blob)
        doc["status"] = "queued"
        doc["properties"].pop(IMPORT_LOCK, None)
        if _multi_store(cloud):
            doc["properties"]["os_glance_failed_import"] = "local"
        model.save(cloud, doc)
        # Glance's flow reverts the image; the task is marked failed once the flow's
        # engine has ended (glance/async_/taskflow_executor.py), a moment later.
        await asyncio.sleep(FAIL_LAG)
        _set_task(cloud, plan.get("task"), "failure", failure)
        return
    model.save(cloud, doc)
    model.finish(cloud, doc, blob, received, plan["stuck"])
    if IMPORT_LOCK in doc["properties"]:
        await _end_flow(cloud, image_id)
    _set_task(cloud, plan.get("task"), "success")


async def _end_flow(cloud: Cloud, image_id: str) -> None:
    """Glance's flow after the image went active: _VerifyImageState saves the image as it
    read it then (the save replaces every property, so what a client set meanwhile is
    lost), and _CompleteTask drops the import lock (glance/async_/flows/api_image_import.py)."""
    read = cloud.store.get_record(cloud.name, model.KIND, image_id)
    await asyncio.sleep(LOCK_HOLD)
    current = cloud.store.get_record(cloud.name, model.KIND, image_id)
    if read is None or current is None:
        return
    current["properties"] = {k: v for k, v in read["properties"].items() if k != IMPORT_LOCK}
    model.save(cloud, current)


def resume(cloud: Cloud) -> None:
    """Restart imports that a stop of the local cloud interrupted."""
    for task in cloud.store.list_records(cloud.name, KIND):
        if task["type"] != "import":
            continue
        if task["status"] in ("pending", "processing") and task["_stuck"] is None:
            cloud.spawn(run_task(cloud, task["id"]))
    for doc in model.list_images(cloud):
        if doc["status"] == "importing":
            cloud.spawn(run_import(cloud, doc["id"]))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(f"{PREFIX}/tasks", task_create)
    r.add_get(f"{PREFIX}/tasks", task_list)
    r.add_get(f"{PREFIX}/tasks/{{task_id}}", task_show)
    r.add_get(f"{PREFIX}/info/import", import_info)
    r.add_put(f"{PREFIX}/images/{{image_id}}/stage", stage)
    r.add_post(f"{PREFIX}/images/{{image_id}}/import", import_image)
    if app["cloud"].personality.image_import["task_list"]:
        r.add_get(f"{PREFIX}/images/{{image_id}}/tasks", image_tasks)
