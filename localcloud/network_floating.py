"""Neutron floating IPs: allocated from a ``router:external`` network, associated with a port.

An associated floating IP is what makes a server on a tenant network reachable:
``netmodel.refresh`` starts forwarding its port 22 when it is associated and
stops when it is not. Quota exhaustion is Neutron's 409 ``OverQuota``.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from localcloud import netmodel, quotas
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, json_response
from localcloud.netmodel import NotFound
from localcloud.network_base import BadRequest, body_of, created, find, over_quota, view


def _associate(cloud: Cloud, fip: dict, port_id: object, fixed: object) -> None:
    if port_id is None:
        fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
        return
    port = find(cloud, "ports", str(port_id))
    net = netmodel.get(cloud, "network", port["network_id"]) or {}
    address = fixed or port["fixed_ips"][0]["ip_address"]
    if net.get("router:external") or net.get("_routable"):
        raise HTTPFault(404, f"External network {fip['floating_network_id']} is not reachable "
                             f"from subnet {port['fixed_ips'][0]['subnet_id']}.  Therefore, "
                             f"cannot associate Port {port['id']} with a Floating IP.",
                        kind="ExternalGatewayForFloatingIPNotFound")
    for other in netmodel.floating_of(cloud, {port["id"]}):
        if other["id"] != fip["id"]:
            raise HTTPFault(409, f"Cannot associate floating IP {fip['floating_ip_address']} "
                                 f"({fip['id']}) with port {port['id']} using fixed IP "
                                 f"{address}, as that fixed IP already has a floating IP on "
                                 f"external network {fip['floating_network_id']}.",
                            kind="FloatingIPPortAlreadyAssociated")
    fip.update(port_id=port["id"], fixed_ip_address=address, status="ACTIVE",
               router_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cloud.name}/router")))


async def floatingip_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "floatingip")
    net = netmodel.get(cloud, "network", str(body.get("floating_network_id")))
    if net is None:
        raise NotFound("NetworkNotFound",
                       f"Network {body.get('floating_network_id')} could not be found.")
    if not net["router:external"]:
        raise BadRequest(f"Bad floatingip request: Network {net['id']} is not a "
                         "valid external network.")
    if quotas.exceeded(request, "floating_ips"):
        raise over_quota("floatingip")
    fip = netmodel.allocate_floating(cloud, net)
    try:
        _associate(cloud, fip, body.get("port_id"), body.get("fixed_ip_address"))
    except HTTPFault:
        netmodel.delete(cloud, "floatingip", fip["id"])
        raise
    fip["description"] = str(body.get("description") or "")
    netmodel.save(cloud, "floatingip", fip)
    await netmodel.refresh(cloud)
    return created(cloud, "floatingip", "floatingip", fip)


async def floatingip_update(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    fip = find(cloud, "floatingips", request.match_info["id"])
    body = await body_of(request, "floatingip")
    if "port_id" in body:
        _associate(cloud, fip, body["port_id"], body.get("fixed_ip_address"))
    if "description" in body:
        fip["description"] = str(body["description"] or "")
    netmodel.save(cloud, "floatingip", fip)
    await netmodel.refresh(cloud)
    return json_response({"floatingip": view(cloud, "floatingip", fip)})


async def floatingip_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    fip = find(cloud, "floatingips", request.match_info["id"])
    netmodel.delete(cloud, "floatingip", fip["id"])
    await netmodel.refresh(cloud)
    return web.Response(status=204)


HANDLERS = (floatingip_create, floatingip_update, floatingip_delete)
