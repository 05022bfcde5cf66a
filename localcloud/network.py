"""Neutron v2.0: networks, subnets, ports, floating IPs and quotas over ``netmodel``.

Which networks exist from the start and whether floating IPs do is the
personality's ``network`` shape (external network with ``router:external``, a
provider network whose ports route externally, a tenant network). Floating IPs
are in ``network_floating``, security groups and rules in ``network_security``,
what the three share (``find``, ``body_of``, the views and errors) in
``network_base``. Errors are Neutron's ``{"NeutronError": {"type", "message", "detail"}}``.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from localcloud import netmodel, network_floating, network_security, quotas
from localcloud.cloud import Cloud, Service
from localcloud.http import ERROR_BODIES, HTTPFault, json_response, public
from localcloud.netmodel import NotFound
from localcloud.network_base import (
    COLLECTIONS,
    BadRequest,
    body_of,
    created,
    deletable,
    find,
    over_quota,
    view,
)

PREFIX = "/network"
API = f"{PREFIX}/v2.0"
DEFAULT_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
                 404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
                 413: "HTTPRequestEntityTooLarge", 500: "HTTPInternalServerError",
                 503: "HTTPServiceUnavailable"}
NEUTRON_QUOTAS = {"network": "networks", "subnet": "subnets", "port": "ports",
                  "floatingip": "floating_ips", "security_group": "security_groups",
                  "security_group_rule": "security_group_rules"}


def neutron_error(status: int, message: str, kind: str | None) -> dict:
    return {"NeutronError": {"type": kind or DEFAULT_TYPES.get(status, "HTTPError"),
                             "message": message, "detail": ""}}


ERROR_BODIES["network"] = neutron_error


def _endpoint(cloud: Cloud, project_id: str) -> str:
    return f"{cloud.base_url}{PREFIX}"


def no_version_document(cloud: Cloud) -> None:
    """Older Neutron whose version discovery is unusable (``network.version_document: false``):
    only the resources under /v2.0/ answer (openstacksdk ``config/cloud_region.py``)."""
    if not cloud.personality.network["version_document"]:
        raise HTTPFault(404, "The resource could not be found.")


@public
async def versions(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    no_version_document(cloud)
    return json_response({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{cloud.base_url}{API}/"}]}]})


@public
async def version(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    no_version_document(cloud)
    names = ["network", "subnet", "port", "security_group", "security_group_rule", "quota"]
    if cloud.personality.floating_ips:
        names.append("floatingip")
    return json_response({"resources": [
        {"name": n, "collection": n + "s", "links": [
            {"rel": "self", "href": f"{cloud.base_url}{API}/{n.replace('_', '-')}s"}]}
        for n in names]})


def extension_list(cloud: Cloud) -> list[dict]:
    aliases = ["external-net", "security-group", "quotas", "quota_details", "port-security",
               "standard-attr-description", "standard-attr-timestamp",
               "standard-attr-revisions", "project-id", "binding"]
    if cloud.personality.network["external"] == "routable-port":
        aliases.append("provider")
    if cloud.personality.floating_ips:
        aliases += ["router", "extraroute"]
    return [{"alias": a, "name": a, "description": a, "links": [],
             "updated": "2013-01-01T10:00:00-00:00"} for a in aliases]


async def extensions(request: web.Request) -> web.Response:
    return json_response({"extensions": extension_list(request.app["cloud"])})


async def extension_show(request: web.Request) -> web.Response:
    alias = request.match_info["alias"]
    for ext in extension_list(request.app["cloud"]):
        if ext["alias"] == alias:
            return json_response({"extension": ext})
    raise NotFound("ExtensionNotFound", f"Extension with alias {alias} does not exist")


# --- the generic part: list and show ------------------------------------------------------
def _matches(doc: dict, key: str, values: list[str]) -> bool:
    if key == "fixed_ips":
        wanted = {v.split("=", 1)[1] for v in values if v.startswith("ip_address=")}
        return not wanted or any(i["ip_address"] in wanted for i in doc["fixed_ips"])
    value = doc[key]
    if isinstance(value, bool):
        return str(value).lower() in [v.lower() for v in values]
    return ("" if value is None else str(value)) in values


def lister(collection: str):
    kind, _, _ = COLLECTIONS[collection]

    async def handler(request: web.Request) -> web.Response:
        cloud = request.app["cloud"]
        docs = [view(cloud, kind, d) for d in netmodel.all_of(cloud, kind)]
        ignored = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
        for key in set(request.query) - ignored:
            docs = [d for d in docs if key in d and _matches(d, key,
                                                             request.query.getall(key))]
        fields = request.query.getall("fields", [])
        if fields:
            docs = [{k: v for k, v in d.items() if k in fields} for d in docs]
        return json_response({collection.replace("-", "_"): docs})
    return handler


def shower(collection: str):
    kind, member, _ = COLLECTIONS[collection]

    async def handler(request: web.Request) -> web.Response:
        cloud = request.app["cloud"]
        doc = find(cloud, collection, request.match_info["id"])
        return json_response({member: view(cloud, kind, doc)})
    return handler


# --- networks and subnets -------------------------------------------------------------------
async def network_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "network")
    if quotas.exceeded(request, "networks"):
        raise over_quota("network")
    doc = netmodel.new_network(cloud, str(body.get("name", "")))
    return created(cloud, "network", "network", doc)


async def network_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    net = deletable(cloud, "networks", request.match_info["id"])
    if any(p["network_id"] == net["id"] and p["device_id"]
           for p in netmodel.all_of(cloud, "port")):
        raise HTTPFault(409, f"Unable to complete operation on network {net['id']}. There "
                             "are one or more ports still in use on the network.",
                        kind="NetworkInUse")
    for port in [p for p in netmodel.all_of(cloud, "port") if p["network_id"] == net["id"]]:
        netmodel.delete(cloud, "port", port["id"])
    for subnet_id in net["subnets"]:
        netmodel.delete(cloud, "subnet", subnet_id)
    netmodel.delete(cloud, "network", net["id"])
    return web.Response(status=204)


async def subnet_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "subnet")
    net = find(cloud, "networks", str(body.get("network_id")))
    allowed = netmodel.private_cidr(cloud)
    try:
        cidr = ipaddress.IPv4Network(str(body.get("cidr")), strict=True)
    except ValueError as e:
        raise BadRequest(f"Invalid input for operation: '{body.get('cidr')}' is not a valid "
                         "IP subnet.", "InvalidInput") from e
    if not cidr.subnet_of(allowed):
        raise BadRequest(f"Invalid input for operation: this cloud hands out addresses in "
                         f"{allowed} only.", "InvalidInput")
    if any(ipaddress.IPv4Network(s["cidr"]).overlaps(cidr)
           for s in netmodel.all_of(cloud, "subnet")):
        raise BadRequest(f"Invalid input for operation: Requested subnet with cidr: {cidr} "
                         "overlaps with another subnet.", "InvalidInput")
    if quotas.exceeded(request, "subnets"):
        raise over_quota("subnet")
    doc = netmodel.new_subnet(cloud, net, str(cidr), str(body.get("name", "")),
                              body.get("gateway_ip"))
    return created(cloud, "subnet", "subnet", doc)


async def subnet_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    subnet = deletable(cloud, "subnets", request.match_info["id"])
    if any(i["subnet_id"] == subnet["id"] for p in netmodel.all_of(cloud, "port")
           for i in p["fixed_ips"]):
        raise HTTPFault(409, f"Unable to complete operation on subnet {subnet['id']}: One or "
                             "more ports have an IP allocation from this subnet.",
                        kind="SubnetInUse")
    net = netmodel.get(cloud, "network", subnet["network_id"])
    if net:
        net["subnets"] = [s for s in net["subnets"] if s != subnet["id"]]
        netmodel.save(cloud, "network", net)
    netmodel.delete(cloud, "subnet", subnet["id"])
    return web.Response(status=204)


# --- ports ------------------------------------------------------------------------------------
def _groups(cloud: Cloud, ids: object) -> list[str] | None:
    if ids is None:
        return None
    if not isinstance(ids, list):
        raise BadRequest("Invalid input for security_groups.", "InvalidInput")
    return [find(cloud, "security-groups", str(i))["id"] for i in ids]


async def port_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "port")
    net = find(cloud, "networks", str(body.get("network_id")))
    fixed = (body.get("fixed_ips") or [{}])[0].get("ip_address")
    if quotas.exceeded(request, "ports"):
        raise over_quota("port")
    doc = netmodel.new_port(cloud, net, name=str(body.get("name", "")), fixed_ip=fixed,
                            security_groups=_groups(cloud, body.get("security_groups")),
                            port_security=body.get("port_security_enabled", True) is not False)
    return created(cloud, "port", "port", doc)


async def port_update(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    port = find(cloud, "ports", request.match_info["id"])
    body = await body_of(request, "port")
    if "security_groups" in body:
        port["security_groups"] = _groups(cloud, body["security_groups"]) or []
    for key in ("name", "description", "admin_state_up", "port_security_enabled"):
        if key in body:
            port[key] = body[key]
    netmodel.save(cloud, "port", port)
    return json_response({"port": view(cloud, "port", port)})


async def port_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    port = find(cloud, "ports", request.match_info["id"])
    for fip in netmodel.floating_of(cloud, {port["id"]}):
        fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
        netmodel.save(cloud, "floatingip", fip)
    netmodel.delete(cloud, "port", port["id"])
    await netmodel.refresh(cloud)
    return web.Response(status=204)


# --- quotas -------------------------------------------------------------------------------------
async def quota_show(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    limit, used = quotas.limits(cloud), quotas.usage(cloud)
    detail = request.path.endswith("/details.json") or request.path.endswith("/details")
    quota = {name: ({"limit": limit[key], "used": used[key], "reserved": 0} if detail
                    else limit[key]) for name, key in NEUTRON_QUOTAS.items()}
    for name in ("router", "rbac_policy"):
        quota[name] = {"limit": 10, "used": 0, "reserved": 0} if detail else 10
    return json_response({"quota": quota})


def add_routes(app: web.Application) -> None:
    cloud = app["cloud"]
    r = app.router
    for path in (PREFIX, PREFIX + "/"):
        r.add_get(path, versions)
    for path in (API, API + "/"):
        r.add_get(path, version)
    r.add_get(f"{API}/extensions", extensions)
    r.add_get(f"{API}/extensions/{{alias}}", extension_show)
    handlers = {"networks": (network_create, None, network_delete),
                "subnets": (subnet_create, None, subnet_delete),
                "ports": (port_create, port_update, port_delete),
                "floatingips": network_floating.HANDLERS,
                **network_security.HANDLERS}
    if not cloud.personality.floating_ips:
        handlers.pop("floatingips")
    for collection, (create, update, remove) in handlers.items():
        base = f"{API}/{collection}"
        r.add_get(base, lister(collection))
        r.add_post(base, create)
        r.add_get(base + "/{id}", shower(collection))
        if update:
            r.add_put(base + "/{id}", update)
        r.add_delete(base + "/{id}", remove)
    for suffix in ("", "/details.json", "/details"):
        r.add_get(f"{API}/quotas/{{project_id}}{suffix}", quota_show)


SERVICE = Service(type="network", name="neutron", prefix=PREFIX, endpoint=_endpoint,
                  add_routes=add_routes,
                  resources=netmodel.user_resources)
