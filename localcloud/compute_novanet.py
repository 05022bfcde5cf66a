"""nova-network through Nova: os-floating-ips, os-floating-ip-pools, os-security-groups,
os-tenant-networks.

Served where the personality's ``network.api`` is ``nova-network`` (the talks'
nova-network shape) or ``neutron`` (Nova's proxies to Neutron), and only up to
microversion 2.35 (a bare 404 after: ``compute_version.until``).  A floating IP
asked without a pool comes from Nova's ``default_floating_pool``, ``nova``
(``nova/conf/neutron.py``): on a cloud whose pool has another name that is a
404, as on a real one. The records are the same ones Neutron would serve
(``netmodel``), shown in nova-network's shapes: a floating IP is
``{"id", "ip", "fixed_ip", "instance_id", "pool"}``, a rule
``{"parent_group_id", "ip_protocol", "from_port", "to_port", "ip_range", "group"}``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from localcloud import compute_version, netmodel, quotas
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, json_response, read_json

Handler = Callable[[web.Request], Awaitable[web.Response]]
DEFAULT_FLOATING_POOL = "nova"      # Nova's default_floating_pool option


def _existing(cloud: Cloud, kind: str, rid: str, missing: str) -> dict:
    """The ``kind`` record ``rid``; a 404 saying ``missing`` if there is none."""
    record = netmodel.get(cloud, kind, rid)
    if record is None:
        raise HTTPFault(404, missing)
    return record


def _readers(kind: str, member: str, key: str, view: Callable[[Cloud, dict], dict],
             find: Callable[[Cloud, str], dict]) -> tuple[Handler, Handler]:
    """The list and show handlers of one collection of ``kind`` records.

    The list answers ``{member + "s": [...]}``, the show ``{member: ...}`` for the
    record ``find`` returns for the path's ``key``; each record in ``view``.
    """
    async def listing(request: web.Request) -> web.Response:
        cloud = request.app["cloud"]
        return json_response({f"{member}s": [view(cloud, r)
                                             for r in netmodel.all_of(cloud, kind)]})

    async def showing(request: web.Request) -> web.Response:
        cloud = request.app["cloud"]
        return json_response({member: view(cloud, find(cloud, request.match_info[key]))})
    return listing, showing


# --- floating IPs ---------------------------------------------------------------------
def pools(cloud: Cloud) -> list[dict]:
    return [n for n in netmodel.all_of(cloud, "network") if n["router:external"]]


def floating_view(cloud: Cloud, fip: dict) -> dict:
    port = netmodel.get(cloud, "port", fip["port_id"]) if fip["port_id"] else None
    pool = netmodel.get(cloud, "network", fip["floating_network_id"]) or {"name": ""}
    return {"id": fip["id"], "ip": fip["floating_ip_address"],
            "fixed_ip": fip["fixed_ip_address"],
            "instance_id": port["device_id"] if port else None, "pool": pool["name"]}


def _floating(cloud: Cloud, fid: str) -> dict:
    return _existing(cloud, "floatingip", fid, f"Floating IP not found for ID {fid}")


floating_list, floating_show = _readers("floatingip", "floating_ip", "fip_id", floating_view,
                                        _floating)


async def floating_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await read_json(request) or {}
    name = body.get("pool") or DEFAULT_FLOATING_POOL
    pool = next((p for p in pools(cloud) if p["name"] == name), None)
    if pool is None:
        raise HTTPFault(404, "Floating IP pool not found.")
    if quotas.exceeded(request, "floating_ips"):
        raise HTTPFault(403, f"IP allocation over quota in pool {name}.")
    fip = netmodel.allocate_floating(cloud, pool)
    return json_response({"floating_ip": floating_view(cloud, fip)})


async def floating_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    fip = _floating(cloud, request.match_info["fip_id"])
    netmodel.delete(cloud, "floatingip", fip["id"])
    await netmodel.refresh(cloud)
    return web.Response(status=202)


async def pools_list(request: web.Request) -> web.Response:
    return json_response({"floating_ip_pools": [{"name": p["name"]}
                                                for p in pools(request.app["cloud"])]})


async def add_floating(request: web.Request, server: dict, args: dict) -> web.Response:
    cloud = request.app["cloud"]
    address = args.get("address")
    fip = next((f for f in netmodel.all_of(cloud, "floatingip")
                if f["floating_ip_address"] == address), None)
    if fip is None:
        raise HTTPFault(404, f"floating IP {address} not found")
    ports = netmodel.ports_of(cloud, server["id"])
    fixed = args.get("fixed_address")
    port = next((p for p in ports if fixed in (None, p["fixed_ips"][0]["ip_address"])), None)
    if port is None:
        raise HTTPFault(400, f"Specified fixed address '{fixed}' not assigned to instance")
    if fip["port_id"] and fip["port_id"] != port["id"]:
        raise HTTPFault(400, "floating IP is already associated")
    fip.update(port_id=port["id"], fixed_ip_address=port["fixed_ips"][0]["ip_address"],
               status="ACTIVE")
    netmodel.save(cloud, "floatingip", fip)
    await netmodel.refresh(cloud)
    return web.Response(status=202)


async def remove_floating(request: web.Request, server: dict, args: dict) -> web.Response:
    cloud = request.app["cloud"]
    address = args.get("address")
    ports = {p["id"] for p in netmodel.ports_of(cloud, server["id"])}
    fip = next((f for f in netmodel.all_of(cloud, "floatingip")
                if f["floating_ip_address"] == address), None)
    if fip is None:
        raise HTTPFault(404, f"floating IP {address} not found")
    if fip["port_id"] not in ports:
        raise HTTPFault(409, f"Floating IP {address} is not associated with instance "
                             f"{server['id']}.")
    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
    netmodel.save(cloud, "floatingip", fip)
    await netmodel.refresh(cloud)
    return web.Response(status=202)


# --- networks ---------------------------------------------------------------------------
def tenant_network_view(cloud: Cloud, net: dict) -> dict:
    """os-tenant-networks' shape: the label is the network's name."""
    subnets = netmodel.subnets_of(cloud, net)
    return {"id": net["id"], "label": net["name"],
            "cidr": subnets[0]["cidr"] if subnets else None}


async def tenant_networks_list(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    return json_response({"networks": [tenant_network_view(cloud, n)
                                       for n in netmodel.all_of(cloud, "network")
                                       if not n["router:external"]]})


# --- security groups --------------------------------------------------------------------
def rule_view(cloud: Cloud, rule: dict) -> dict:
    remote = netmodel.get(cloud, "secgroup", rule["remote_group_id"]) \
        if rule["remote_group_id"] else None
    low, high = rule["port_range_min"], rule["port_range_max"]
    protocol = rule["protocol"]
    if protocol is None:
        low, high = (None, None)
    elif low is None:
        low, high = (-1, -1) if protocol == "icmp" else (1, 65535)
    return {"id": rule["id"], "parent_group_id": rule["security_group_id"],
            "ip_protocol": protocol, "from_port": low, "to_port": high,
            "ip_range": {"cidr": rule["remote_ip_prefix"] or "0.0.0.0/0"} if not remote else {},
            "group": {"name": remote["name"], "tenant_id": remote["tenant_id"]} if remote
            else {}}


def group_view(cloud: Cloud, group: dict) -> dict:
    rules = [rule_view(cloud, r) for r in netmodel.rules_of(cloud, group["id"])
             if r["direction"] == "ingress" and r["ethertype"] == "IPv4"]
    return {"id": group["id"], "name": group["name"], "description": group["description"],
            "tenant_id": group["tenant_id"], "rules": rules}


def _group(cloud: Cloud, gid: object) -> dict:
    return _existing(cloud, "secgroup", str(gid), f"Security group {gid} not found.")


groups_list, group_show = _readers("secgroup", "security_group", "group_id", group_view, _group)


async def group_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = (await read_json(request) or {}).get("security_group")
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or \
            not isinstance(body.get("description"), str):
        raise HTTPFault(400, "Invalid input for field/attribute security_group.")
    neutron = cloud.personality.network["api"] == "neutron"
    if not neutron and any(g["name"] == body["name"] for g in netmodel.all_of(cloud, "secgroup")):
        raise HTTPFault(400, f"Security group {body['name']} already exists")
    if quotas.exceeded(request, "security_groups"):
        raise HTTPFault(403, "Quota exceeded, too many security groups.")
    group = netmodel.new_group(cloud, body["name"], body["description"])
    for ethertype in ("IPv4", "IPv6") if neutron else ():     # what Neutron adds
        netmodel.new_rule(cloud, group, direction="egress", ethertype=ethertype, system=True)
    return json_response({"security_group": group_view(cloud, group)})


async def group_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    group = _group(cloud, request.match_info["group_id"])
    if group["name"] == "default":
        raise HTTPFault(400, "Removing default security group not allowed.")
    if any(group["id"] in p["security_groups"] for p in netmodel.all_of(cloud, "port")):
        raise HTTPFault(400, "Security group is still in use")
    for rule in netmodel.rules_of(cloud, group["id"]):
        netmodel.delete(cloud, "secrule", rule["id"])
    netmodel.delete(cloud, "secgroup", group["id"])
    return web.Response(status=202)


def _port_number(value: object) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError) as e:
        raise HTTPFault(400, "Invalid port range") from e


async def rule_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = (await read_json(request) or {}).get("security_group_rule")
    if not isinstance(body, dict):
        raise HTTPFault(400, "Invalid input for field/attribute security_group_rule.")
    group = _group(cloud, body.get("parent_group_id"))
    protocol = (body.get("ip_protocol") or "").lower() or None
    if protocol not in (None, "tcp", "udp", "icmp"):
        raise HTTPFault(400, f"Invalid IP protocol {protocol}.")
    low, high = _port_number(body.get("from_port")), _port_number(body.get("to_port"))
    remote_group = _group(cloud, body["group_id"])["id"] if body.get("group_id") else None
    cidr = None if remote_group else (body.get("cidr") or "0.0.0.0/0")
    if cidr:
        try:
            cidr = str(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError as e:
            raise HTTPFault(400, f"Invalid CIDR {cidr}") from e
    if protocol in ("tcp", "udp") and (low is None or high is None or not 1 <= low <= high
                                       <= 65535):
        raise HTTPFault(400, "Invalid port range")
    if protocol == "icmp" and (low, high) == (-1, -1):
        low = high = None
    fields = {"protocol": protocol, "port_range_min": low, "port_range_max": high,
              "remote_ip_prefix": cidr, "remote_group_id": remote_group}
    for rule in netmodel.rules_of(cloud, group["id"]):
        if rule["direction"] == "ingress" and all(rule[k] == v for k, v in fields.items()):
            raise HTTPFault(400, f"This rule already exists in group {group['id']}")
    if quotas.exceeded(request, "security_group_rules"):
        raise HTTPFault(403, "Quota exceeded, too many security group rules.")
    rule = netmodel.new_rule(cloud, group, **fields)
    return json_response({"security_group_rule": rule_view(cloud, rule)})


async def rule_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    rule_id = request.match_info["rule_id"]
    rule = _existing(cloud, "secrule", rule_id, f"Security group rule {rule_id} not found")
    netmodel.delete(cloud, "secrule", rule["id"])
    return web.Response(status=202)


async def _set_group(request: web.Request, server: dict, args: dict,
                     adding: bool) -> web.Response:
    cloud = request.app["cloud"]
    group = next((g for g in netmodel.all_of(cloud, "secgroup")
                  if args.get("name") in (g["name"], g["id"])), None)
    if group is None:
        raise HTTPFault(404, f"Security group {args.get('name')} not found for project "
                             f"{cloud.credentials['project_id']}.")
    for port in netmodel.ports_of(cloud, server["id"]):
        groups = set(port["security_groups"])
        groups = groups | {group["id"]} if adding else groups - {group["id"]}
        port["security_groups"] = sorted(groups)
        netmodel.save(cloud, "port", port)
    return web.Response(status=202)


async def add_group(request: web.Request, server: dict, args: dict) -> web.Response:
    return await _set_group(request, server, args, adding=True)


async def remove_group(request: web.Request, server: dict, args: dict) -> web.Response:
    return await _set_group(request, server, args, adding=False)


ACTIONS = {"addFloatingIp": add_floating, "removeFloatingIp": remove_floating,
           "addSecurityGroup": add_group, "removeSecurityGroup": remove_group}


ROUTES = [("GET", "os-floating-ips", floating_list), ("POST", "os-floating-ips", floating_create),
          ("GET", "os-floating-ips/{fip_id}", floating_show),
          ("DELETE", "os-floating-ips/{fip_id}", floating_delete),
          ("GET", "os-floating-ip-pools", pools_list),
          ("GET", "os-tenant-networks", tenant_networks_list),
          ("GET", "os-security-groups", groups_list), ("POST", "os-security-groups", group_create),
          ("GET", "os-security-groups/{group_id}", group_show),
          ("DELETE", "os-security-groups/{group_id}", group_delete),
          ("POST", "os-security-group-rules", rule_create),
          ("DELETE", "os-security-group-rules/{rule_id}", rule_delete)]


def add_routes(app: web.Application, api: str) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, f"{api}/{path}",
                             compute_version.until(compute_version.LAST_PROXY, handler))
