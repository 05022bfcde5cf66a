"""Neutron security groups and rules: what ``forwarding`` asks before letting port 22 through.

A new group gets Neutron's two egress rules; the default group (made at start)
also lets members of the group in, which never includes anyone outside the
cloud. So a server answers from outside only once a rule opens the port for a
prefix containing the caller.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from localcloud import netmodel, quotas
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, json_response
from localcloud.network_base import body_of, created, find, group_view, over_quota

PROTOCOLS = {"tcp": "6", "udp": "17", "icmp": "1"}
RULE_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_group_id")


async def group_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "security_group")
    name = str(body.get("name", ""))
    if name == "default":
        raise HTTPFault(409, "Default security group already exists.",
                        kind="SecurityGroupDefaultAlreadyExists")
    if quotas.exceeded(request, "security_groups"):
        raise over_quota("security_group")
    group = netmodel.new_group(cloud, name, str(body.get("description") or ""))
    for ethertype in ("IPv4", "IPv6"):
        netmodel.new_rule(cloud, group, direction="egress", ethertype=ethertype, system=True)
    return created(cloud, "secgroup", "security_group", group)


async def group_update(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    group = find(cloud, "security-groups", request.match_info["id"])
    body = await body_of(request, "security_group")
    for key in ("name", "description"):
        if key in body:
            group[key] = str(body[key])
    netmodel.save(cloud, "secgroup", group)
    return json_response({"security_group": group_view(cloud, group)})


async def group_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    group = find(cloud, "security-groups", request.match_info["id"])
    if group["name"] == "default":
        raise HTTPFault(409, "Insufficient rights for removing default security group.",
                        kind="SecurityGroupCannotRemoveDefault")
    if any(group["id"] in p["security_groups"] for p in netmodel.all_of(cloud, "port")):
        raise HTTPFault(409, f"Security Group {group['id']} in use.",
                        kind="SecurityGroupInUse")
    for rule in netmodel.rules_of(cloud, group["id"]):
        netmodel.delete(cloud, "secrule", rule["id"])
    netmodel.delete(cloud, "secgroup", group["id"])
    return web.Response(status=204)


def _invalid(message: str) -> HTTPFault:
    """An attribute Neutron's API layer refuses before any lookup (webob's HTTPBadRequest)."""
    return HTTPFault(400, message, kind="HTTPBadRequest")


def parse_rule(cloud: Cloud, body: dict) -> tuple[dict, dict]:
    """(group, rule fields) from a request body, validated as Neutron does."""
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise _invalid(f"Invalid input for direction. Reason: {direction} is not in "
                       "valid_values.")
    ethertype = body.get("ethertype") or "IPv4"
    if ethertype not in ("IPv4", "IPv6"):
        raise _invalid(f"Invalid input for ethertype. Reason: {ethertype} is not in "
                       "valid_values.")
    group = find(cloud, "security-groups", str(body.get("security_group_id")))
    protocol = body.get("protocol")
    protocol = None if protocol in (None, "", "any") else str(protocol).lower()
    if protocol is not None and protocol not in PROTOCOLS and not protocol.isdigit():
        raise HTTPFault(400, f"Security group rule protocol {protocol} not supported. Only "
                             "protocol values [None, 'tcp', 'udp', 'icmp'] and integer "
                             "representations [0 to 255] are supported.",
                        kind="SecurityGroupRuleInvalidProtocol")
    low, high = body.get("port_range_min"), body.get("port_range_max")
    try:
        low = None if low is None else int(low)
        high = None if high is None else int(high)
    except (TypeError, ValueError) as e:
        raise _invalid("Invalid input for port_range_min or port_range_max.") from e
    if protocol in ("tcp", "udp", "6", "17"):
        if low is None and high is not None:
            raise HTTPFault(400, "For TCP/UDP protocols, port_range_min must be <= "
                                 "port_range_max", kind="SecurityGroupInvalidPortRange")
        if low is not None:
            high = low if high is None else high
            if not 1 <= low <= high <= 65535:
                raise HTTPFault(400, "Invalid value for port " + str(low if low < 1 or
                                                                      low > 65535 else high),
                                kind="SecurityGroupInvalidPortValue")
    elif protocol is None and (low is not None or high is not None):
        raise HTTPFault(400, "Must also specify protocol if port range is given.",
                        kind="SecurityGroupProtocolRequiredWithPorts")
    prefix, remote_group = body.get("remote_ip_prefix"), body.get("remote_group_id")
    if prefix and remote_group:
        raise HTTPFault(400, "Only remote_ip_prefix or remote_group_id may be provided.",
                        kind="SecurityGroupRemoteGroupAndRemoteIpPrefix")
    if prefix:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError as e:
            raise _invalid(f"Invalid input for remote_ip_prefix. Reason: '{prefix}' is not a "
                           "valid IP subnet.") from e
        if (net.version == 4) != (ethertype == "IPv4"):
            raise HTTPFault(400, f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                            kind="SecurityGroupRuleParameterConflict")
        prefix = str(net)
    if remote_group:
        remote_group = find(cloud, "security-groups", str(remote_group))["id"]
    fields = {"direction": direction, "ethertype": ethertype, "protocol": protocol,
              "port_range_min": low, "port_range_max": high,
              "remote_ip_prefix": prefix or None, "remote_group_id": remote_group}
    return group, fields


async def rule_create(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    body = await body_of(request, "security_group_rule")
    group, fields = parse_rule(cloud, body)
    for rule in netmodel.rules_of(cloud, group["id"]):
        if all(rule[k] == fields[k] for k in RULE_KEYS):
            raise HTTPFault(409, f"Security group rule already exists. Rule id is "
                                 f"{rule['id']}.", kind="SecurityGroupRuleExists")
    if quotas.exceeded(request, "security_group_rules"):
        raise over_quota("security_group_rule")
    rule = netmodel.new_rule(cloud, group, **fields)
    if body.get("description"):
        rule["description"] = str(body["description"])
        netmodel.save(cloud, "secrule", rule)
    return created(cloud, "secrule", "security_group_rule", rule)


async def rule_delete(request: web.Request) -> web.Response:
    cloud = request.app["cloud"]
    rule = find(cloud, "security-group-rules", request.match_info["id"])
    netmodel.delete(cloud, "secrule", rule["id"])
    return web.Response(status=204)


HANDLERS = {"security-groups": (group_create, group_update, group_delete),
            "security-group-rules": (rule_create, None, rule_delete)}

