"""The admin API, on its own loopback port: clouds, faults and resource accounting.

It needs no token (it only ever listens on 127.0.0.1). Everything a test or a
rehearsal needs to steer the local cloud goes through here:

    GET    /admin/clouds[/{cloud}]              endpoints and credentials
    GET    /admin/resources                     what exists, per cloud
    GET    /admin/clouds/{cloud}/resources
    GET    /admin/faults                        faults in force, with counters
    POST   /admin/faults                        add one fault or a list
    DELETE /admin/faults[?cloud=NAME]           remove all (of a cloud)
    DELETE /admin/faults/{id}
    GET|POST|DELETE /admin/clouds/{cloud}/faults   the same, for one cloud
    GET|PUT /admin/clouds/{cloud}/quotas        limits and usage; PUT changes limits
    GET    /admin/guests                        qemu guests, accelerator, forwarded addresses
"""

from __future__ import annotations

from aiohttp import web

from localcloud import quotas
from localcloud.cloud import Cloud
from localcloud.faults import FaultError, FaultRegistry
from localcloud.forwarding import Forwarder
from localcloud.guests import Hypervisor
from localcloud.http import json_response, read_json


def cloud_info(cloud: Cloud, admin_url: str) -> dict:
    return {"name": cloud.name, "personality": cloud.personality.name, "url": cloud.base_url,
            "auth_url": cloud.auth_url, "regions": list(cloud.personality.regions),
            "admin_url": f"{admin_url}/admin/clouds/{cloud.name}",
            "credentials": dict(cloud.credentials)}


def resources(cloud: Cloud) -> dict[str, list]:
    """Every resource that exists in ``cloud``, by kind (tokens aside)."""
    found: dict[str, list] = {}
    for stype in cloud.personality.services:
        lister = cloud.services[stype].resources
        if lister is not None:
            found.update(lister(cloud))
    return found


def _cloud(request: web.Request) -> Cloud:
    name = request.match_info["cloud"]
    clouds = request.app["clouds"]
    if name not in clouds:
        raise web.HTTPNotFound(text=f'{{"error": "no cloud named {name}"}}',
                               content_type="application/json")
    return clouds[name]


async def clouds_index(request: web.Request) -> web.Response:
    admin_url = request.app["admin_url"]
    return json_response({"clouds": {name: cloud_info(c, admin_url)
                                     for name, c in request.app["clouds"].items()}})


async def cloud_show(request: web.Request) -> web.Response:
    return json_response(cloud_info(_cloud(request), request.app["admin_url"]))


async def resources_all(request: web.Request) -> web.Response:
    return json_response({"clouds": {name: resources(c)
                                     for name, c in request.app["clouds"].items()}})


async def resources_one(request: web.Request) -> web.Response:
    return json_response(resources(_cloud(request)))


def _scope(request: web.Request) -> str | None:
    if "cloud" in request.match_info:
        return _cloud(request).name
    return request.query.get("cloud")


async def faults_list(request: web.Request) -> web.Response:
    registry: FaultRegistry = request.app["faults"]
    return json_response({"faults": [f.to_dict() for f in registry.list(_scope(request))]})


async def faults_add(request: web.Request) -> web.Response:
    registry: FaultRegistry = request.app["faults"]
    cloud = _scope(request)
    body = await read_json(request)
    specs = body if isinstance(body, list) else [body]
    for spec in specs:
        name = cloud or (spec.get("cloud", "*") if isinstance(spec, dict) else "*")
        if name != "*" and name not in request.app["clouds"]:
            return json_response({"error": f"no cloud named {name}"}, status=400)
    try:
        added = [registry.add(spec, cloud) for spec in specs]
    except FaultError as e:
        return json_response({"error": str(e)}, status=400)
    return json_response({"faults": [f.to_dict() for f in added]}, status=201)


async def faults_clear(request: web.Request) -> web.Response:
    removed = request.app["faults"].clear(_scope(request))
    return json_response({"removed": removed})


async def fault_delete(request: web.Request) -> web.Response:
    if not request.app["faults"].remove(request.match_info["fault_id"]):
        return json_response({"error": "no such fault"}, status=404)
    return web.Response(status=204)


async def quotas_show(request: web.Request) -> web.Response:
    cloud = _cloud(request)
    return json_response({"limits": quotas.limits(cloud), "usage": quotas.usage(cloud)})


async def quotas_set(request: web.Request) -> web.Response:
    cloud = _cloud(request)
    body = await read_json(request)
    try:
        limits = quotas.set_limits(cloud, body if isinstance(body, dict) else {"": None})
    except ValueError as e:
        return json_response({"error": str(e)}, status=400)
    return json_response({"limits": limits, "usage": quotas.usage(cloud)})


async def guests(request: web.Request) -> web.Response:
    hypervisor: Hypervisor = request.app["hypervisor"]
    forwarder: Forwarder = request.app["forwarder"]
    return json_response({"accel": hypervisor.accel_detail, "max_boots": hypervisor.max_boots,
                          "guests": hypervisor.processes(),
                          "metadata_requests": hypervisor.metadata_log,
                          "listening": {name: forwarder.addresses(name)
                                        for name in request.app["clouds"]}})


def build_app(clouds: dict[str, Cloud], faults: FaultRegistry, admin_url: str,
              hypervisor: Hypervisor | None = None,
              forwarder: Forwarder | None = None) -> web.Application:
    app = web.Application()
    app["clouds"], app["faults"], app["admin_url"] = clouds, faults, admin_url
    app["hypervisor"], app["forwarder"] = hypervisor, forwarder
    r = app.router
    r.add_get("/admin/clouds", clouds_index)
    r.add_get("/admin/clouds/{cloud}", cloud_show)
    r.add_get("/admin/resources", resources_all)
    r.add_get("/admin/clouds/{cloud}/resources", resources_one)
    for path in ("/admin/faults", "/admin/clouds/{cloud}/faults"):
        r.add_get(path, faults_list)
        r.add_post(path, faults_add)
        r.add_delete(path, faults_clear)
    r.add_delete("/admin/faults/{fault_id}", fault_delete)
    r.add_get("/admin/clouds/{cloud}/quotas", quotas_show)
    r.add_put("/admin/clouds/{cloud}/quotas", quotas_set)
    r.add_get("/admin/guests", guests)
    return app
