"""Swift: accounts, containers and objects under /v1/AUTH_<project>, and /info.

Bodies stream to and from files; large objects (SLO, DLO) and expiry are in
``object_large``. Errors are Swift's short HTML bodies.
"""

from __future__ import annotations

import json
import mimetypes
import time

from aiohttp import web

from localcloud import object_large as large
from localcloud.cloud import Cloud, Service
from localcloud.http import (
    HTTPFault,
    http_date,
    iso,
    json_response,
    public,
    read_json,
    receive_file,
    send_parts,
)

MAX_FILE_SIZE = 5 * (1 << 30) + 2
LISTING_LIMIT = 10000
INFO = {
    "swift": {"version": "2.34.0", "max_file_size": MAX_FILE_SIZE,
              "max_object_name_length": 1024, "max_container_name_length": 256,
              "max_account_name_length": 256, "max_meta_name_length": 128,
              "max_meta_value_length": 256, "max_meta_count": 90,
              "max_meta_overall_size": 4096, "max_header_size": 8192,
              "container_listing_limit": LISTING_LIMIT, "account_listing_limit": LISTING_LIMIT,
              "extra_header_count": 0, "account_autocreate": True,
              "allow_account_management": False, "strict_cors_mode": True,
              "policies": [{"name": "Policy-0", "aliases": "Policy-0", "default": True}]},
    "slo": large.SLO_LIMITS,
    "dlo": {"max_segments": 10000},
}
CONTAINER_HEADERS = ("x-container-read", "x-container-write", "x-versions-location",
                     "x-history-location")


def _endpoint(cloud: Cloud, project_id: str) -> str:
    return f"{cloud.base_url}/v1/AUTH_{project_id}"


@public
async def info(request: web.Request) -> web.Response:
    return json_response(INFO)


def _account(request: web.Request) -> str:
    account = request.match_info["account"]
    if account != f"AUTH_{request['token']['project_id']}":
        raise HTTPFault(403, "Access was denied to this resource.")
    return account


def _container(request: web.Request, account: str) -> dict:
    cloud = request.app["cloud"]
    found = cloud.store.get_container(cloud.name, account, request.match_info["container"])
    if found is None:
        raise HTTPFault(404, "The resource could not be found.")
    return found


def _update_meta(meta: dict, headers, prefix: str, extra: tuple = ()) -> dict:
    """Swift metadata semantics: set, clear with an empty value, or X-Remove-*."""
    meta = dict(meta)
    remove = "x-remove-" + prefix.removeprefix("x-")
    for key, value in headers.items():
        key = key.lower()
        if key.startswith(prefix) or key in extra:
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)
        elif key.startswith(remove):
            meta.pop(prefix + key[len(remove):], None)
    return meta


def _meta_headers(meta: dict) -> dict:
    return {k.title(): v for k, v in meta.items()}


def _listing(request: web.Request, items: list[dict], name_key: str = "name"):
    """Apply prefix/delimiter/markers/limit/reverse; answer JSON or plain names."""
    q = request.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    marker, end_marker = q.get("marker", ""), q.get("end_marker", "")
    reverse = q.get("reverse", "").lower() in ("1", "true", "yes", "on")
    try:
        limit = min(int(q.get("limit", LISTING_LIMIT)), LISTING_LIMIT)
    except ValueError as e:
        raise HTTPFault(412, "Value of limit must be an integer") from e
    if reverse:
        items = items[::-1]
    out, seen_dirs = [], set()
    for item in items:
        name = item[name_key]
        if not name.startswith(prefix):
            continue
        if marker and (name <= marker if not reverse else name >= marker):
            continue
        if end_marker and (name >= end_marker if not reverse else name <= end_marker):
            continue
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                subdir = name[:cut + len(delimiter)]
                if subdir not in seen_dirs:
                    seen_dirs.add(subdir)
                    out.append({"subdir": subdir})
                continue
        out.append(item)
        if len(out) >= limit:
            break
    return out[:limit]


def _listing_response(request: web.Request, out: list[dict], headers: dict) -> web.Response:
    wants_json = request.query.get("format") == "json" or (
        "format" not in request.query and "application/json" in request.headers.get("Accept", ""))
    if wants_json:
        return json_response(out, headers=headers)
    if not out:
        return web.Response(status=204, headers=headers)
    text = "".join((o.get("name") or o.get("subdir")) + "\n" for o in out)
    return web.Response(text=text, headers=headers, content_type="text/plain", charset="utf-8")


# --- account ----------------------------------------------------------------------
def _account_headers(cloud: Cloud, account: str) -> dict:
    containers = cloud.store.list_containers(cloud.name, account)
    count, used = cloud.store.container_usage(cloud.name, account)
    meta = cloud.store.get_meta(f"account:{cloud.name}:{account}") or {}
    return {"X-Account-Container-Count": str(len(containers)),
            "X-Account-Object-Count": str(count), "X-Account-Bytes-Used": str(used),
            "X-Timestamp": f"{time.time():.5f}", **_meta_headers(meta)}


async def account_get(request: web.Request) -> web.StreamResponse:
    cloud = request.app["cloud"]
    account = _account(request)
    headers = _account_headers(cloud, account)
    if request.method == "HEAD":
        return web.Response(status=204, headers=headers)
    items = []
    for c in cloud.store.list_containers(cloud.name, account):
        count, used = cloud.store.container_usage(cloud.name, account, c["name"])
        items.append({"name": c["name"], "count": count, "bytes": used,
                      "last_modified": iso(c["created"], micro=True, zulu=False)})
    return _listing_response(request, _listing(request, items), headers)


async def account_post(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    key = f"account:{cloud.name}:{_account(request)}"
    cloud.store.set_meta(key, _update_meta(cloud.store.get_meta(key) or {}, request.headers,
                                           "x-account-meta-"))
    return web.Response(status=204)


# --- containers ---------------------------------------------------------------------
async def container_put(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    account = _account(request)
    name = request.match_info["container"]
    if len(name) > 256 or "/" in name:
        raise HTTPFault(400, "Container name is too long or contains '/'.")
    old = cloud.store.get_container(cloud.name, account, name)
    meta = _update_meta(old["meta"] if old else {}, request.headers, "x-container-meta-",
                        CONTAINER_HEADERS)
    cloud.store.put_container(cloud.name, account, name, meta, time.time())
    return web.Response(status=202 if old else 201)


async def container_get(request: web.Request) -> web.StreamResponse:
    cloud = request.app["cloud"]
    account = _account(request)
    container = _container(request, account)
    count, used = cloud.store.container_usage(cloud.name, account, container["name"])
    headers = {"X-Container-Object-Count": str(count), "X-Container-Bytes-Used": str(used),
               "X-Timestamp": f"{container['created']:.5f}", "X-Storage-Policy": "Policy-0",
               **_meta_headers(container["meta"])}
    if request.method == "HEAD":
        return web.Response(status=204, headers=headers)
    objects = [o for o in cloud.store.list_objects(cloud.name, account, container["name"])
               if large.alive(cloud, o) is not None]
    items = [{"name": o["name"], "hash": large.etag_of(cloud, o).strip('"'),
              "bytes": large.size_of(cloud, o), "content_type": o["content_type"],
              "last_modified": iso(o["last_modified"], micro=True, zulu=False)}
             for o in objects]
    return _listing_response(request, _listing(request, items), headers)


async def container_post(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    account = _account(request)
    container = _container(request, account)
    meta = _update_meta(container["meta"], request.headers, "x-container-meta-",
                        CONTAINER_HEADERS)
    cloud.store.put_container(cloud.name, account, container["name"], meta,
                              container["created"])
    return web.Response(status=204)


async def container_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    account = _account(request)
    container = _container(request, account)
    if cloud.store.container_usage(cloud.name, account, container["name"])[0]:
        raise HTTPFault(409, "There was a conflict when trying to complete your request.")
    cloud.store.delete_container(cloud.name, account, container["name"])
    return web.Response(status=204)


# --- objects ------------------------------------------------------------------------
def _delete_at(headers) -> float | None:
    try:
        if "X-Delete-At" in headers:
            when = float(int(headers["X-Delete-At"]))
        elif "X-Delete-After" in headers:
            when = time.time() + int(headers["X-Delete-After"])
        else:
            return None
    except ValueError as e:
        raise HTTPFault(400, "Non-integer X-Delete-After or X-Delete-At") from e
    if when <= time.time():
        raise HTTPFault(400, "X-Delete-At in past")
    return when


def _get_object(request: web.Request) -> tuple[Cloud, dict]:
    cloud = request.app["cloud"]
    account = _account(request)
    obj = large.lookup(cloud, account, request.match_info["container"],
                       request.match_info["object"])
    if obj is None:
        raise HTTPFault(404, "The resource could not be found.")
    return cloud, obj


async def object_put(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    account = _account(request)
    container = _container(request, account)["name"]
    name = request.match_info["object"]
    headers = request.headers
    if request.content_length is not None and request.content_length > MAX_FILE_SIZE:
        raise HTTPFault(413, "Your request is too large.")
    if headers.get("If-None-Match") == "*" and large.lookup(cloud, account, container, name):
        raise HTTPFault(412, "Precondition Failed")
    delete_at = _delete_at(headers)
    row = {"cloud": cloud.name, "account": account, "container": container, "name": name,
           "last_modified": time.time(), "delete_at": delete_at, "manifest": None,
           "manifest_data": None, "blob": None,
           "content_type": headers.get("Content-Type") or mimetypes.guess_type(name)[0]
           or "application/octet-stream",
           "meta": _update_meta({}, headers, "x-object-meta-")}
    if request.query.get("multipart-manifest") == "put":
        manifest, etag, size = large.build_slo(cloud, account, await read_json(request))
        row.update(manifest="slo", manifest_data=manifest, etag=etag, size=size)
        reply_etag = f'"{etag}"'
    else:
        tmp = cloud.store.tmp_path()
        try:
            received = await receive_file(request, tmp, sha512=False, max_size=MAX_FILE_SIZE)
            wanted = headers.get("ETag", "").strip('"')
            if wanted and wanted != received.md5:
                raise HTTPFault(422, "The object data did not match the ETag you sent.")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        row.update(etag=received.md5, size=received.size, blob=cloud.store.commit_blob(tmp))
        if "X-Object-Manifest" in headers:
            row.update(manifest="dlo", manifest_data=headers["X-Object-Manifest"])
        reply_etag = received.md5
    old = cloud.store.put_object(row)
    if old is not None and old["blob"] != row["blob"]:
        cloud.store.remove_blob(old["blob"])
    return web.Response(status=201, headers={"Etag": reply_etag,
                                             "Last-Modified": http_date(row["last_modified"])})


def _range(header: str, size: int) -> tuple[int, int] | None:
    """A single 'bytes=a-b' range as (start, length), or None to send everything."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:
            start = max(size - int(last), 0)
            end = size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise HTTPFault(416, "Requested Range Not Satisfiable")
    return start, end - start + 1


def _slice(parts: list, start: int, length: int) -> list:
    out, pos = [], 0
    for path, offset, size in parts:
        lo, hi = max(start, pos), min(start + length, pos + size)
        if lo < hi:
            out.append((path, offset + lo - pos, hi - lo))
        pos += size
    return out


async def object_get(request: web.Request) -> web.StreamResponse:
    cloud, obj = _get_object(request)
    headers = {"Content-Type": obj["content_type"], "Etag": large.etag_of(cloud, obj),
               "Last-Modified": http_date(obj["last_modified"]),
               "X-Timestamp": f"{obj['last_modified']:.5f}", "Accept-Ranges": "bytes",
               **_meta_headers(obj["meta"])}
    if obj["delete_at"] is not None:
        headers["X-Delete-At"] = str(int(obj["delete_at"]))
    if obj["manifest"] == "slo":
        headers["X-Static-Large-Object"] = "True"
        if request.query.get("multipart-manifest") == "get":
            headers.update({"Content-Type": "application/json; charset=utf-8",
                            "Etag": obj["etag"]})
            body = json.dumps(obj["manifest_data"]).encode()
            return web.Response(body=body, headers=headers)
    if obj["manifest"] == "dlo":
        headers["X-Object-Manifest"] = obj["manifest_data"]
    parts = large.object_parts(cloud, obj)
    total = sum(p[2] for p in parts)
    wanted = _range(request.headers.get("Range", ""), total)
    if wanted is None:
        return await send_parts(request, parts, headers)
    start, length = wanted
    headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{total}"
    return await send_parts(request, _slice(parts, start, length), headers, status=206)


async def object_post(request: web.Request) -> web.Response:
    cloud, obj = _get_object(request)
    obj["meta"] = _update_meta({}, request.headers, "x-object-meta-")
    if "X-Delete-At" in request.headers or "X-Delete-After" in request.headers:
        obj["delete_at"] = _delete_at(request.headers)
    if "X-Remove-Delete-At" in request.headers:
        obj["delete_at"] = None
    obj["content_type"] = request.headers.get("Content-Type", obj["content_type"])
    cloud.store.update_object_meta(obj)
    return web.Response(status=202)


async def object_delete(request: web.Request) -> web.Response:
    cloud, obj = _get_object(request)
    if request.query.get("multipart-manifest") == "delete" and obj["manifest"] == "slo":
        deleted, not_found = large.delete_slo(cloud, obj)
        result = {"Number Deleted": deleted, "Number Not Found": not_found,
                  "Response Body": "", "Response Status": "200 OK", "Errors": []}
        if "application/json" in request.headers.get("Accept", ""):
            return json_response(result)
        text = "".join(f"{k}: {v}\n" for k, v in result.items() if k != "Errors") + "Errors:\n"
        return web.Response(text=text, content_type="text/plain")
    cloud.store.delete_object(obj)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/info", info)
    account, container = "/v1/{account}", "/v1/{account}/{container}"
    obj = "/v1/{account}/{container}/{object:.+}"
    for slash in ("", "/"):           # Swift reads '/v1/a/' as the account, '/v1/a/c/' as c
        r.add_get(account + slash, account_get)
        r.add_post(account + slash, account_post)
        r.add_put(container + slash, container_put)
        r.add_get(container + slash, container_get)
        r.add_post(container + slash, container_post)
        r.add_delete(container + slash, container_delete)
    r.add_put(obj, object_put)
    r.add_get(obj, object_get)
    r.add_post(obj, object_post)
    r.add_delete(obj, object_delete)


SERVICE = Service(type="object-store", name="swift", prefix="/v1", endpoint=_endpoint,
                  add_routes=add_routes, resources=large.resources)
