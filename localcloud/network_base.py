"""What the Neutron routers share: finding a record, reading a body, views and errors.

``network`` (networks, subnets, ports), ``network_floating`` and
``network_security`` import this; it imports none of them, so the routers need
no import inside a function.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from localcloud import netmodel
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault, json_response, read_json
from localcloud.netmodel import NotFound, public_view

# collection -> (record kind, JSON member name, Neutron's not-found exception name)
COLLECTIONS = {"networks": ("network", "network", "NetworkNotFound"),
               "subnets": ("subnet", "subnet", "SubnetNotFound"),
               "ports": ("port", "port", "PortNotFound"),
               "floatingips": ("floatingip", "floatingip", "FloatingIPNotFound"),
               "security-groups": ("secgroup", "security_group", "SecurityGroupNotFound"),
               "security-group-rules": ("secrule", "security_group_rule",
                                        "SecurityGroupRuleNotFound")}
MISSING = {"networks": "Network {} could not be found.",
           "subnets": "Subnet {} could not be found.", "ports": "Port {} could not be found.",
           "floatingips": "Floating IP {} could not be found",
           "security-groups": "Security group {} does not exist",
           "security-group-rules": "Security group rule {} does not exist"}


class BadRequest(HTTPFault):
    def __init__(self, message: str, kind: str = "BadRequest"):
        super().__init__(400, message, kind=kind)


def over_quota(resource: str) -> HTTPFault:
    return HTTPFault(409, f"Quota exceeded for resources: ['{resource}'].", kind="OverQuota")


def group_view(cloud: Cloud, doc: dict) -> dict:
    """A security group with its rules, as Neutron shows it."""
    return dict(public_view(doc), security_group_rules=[
        public_view(r) for r in netmodel.rules_of(cloud, doc["id"])])


VIEWS: dict[str, Callable[[Cloud, dict], dict]] = {"secgroup": group_view}


def view(cloud: Cloud, kind: str, doc: dict) -> dict:
    return VIEWS.get(kind, lambda c, d: public_view(d))(cloud, doc)


def find(cloud: Cloud, collection: str, rid: str) -> dict:
    kind, _, missing = COLLECTIONS[collection]
    doc = netmodel.get(cloud, kind, rid)
    if doc is None:
        raise NotFound(missing, MISSING[collection].format(rid))
    return doc


def deletable(cloud: Cloud, collection: str, rid: str) -> dict:
    """The record a DELETE names; one the cloud made itself (``_system``) is refused (403)."""
    doc = find(cloud, collection, rid)
    if doc["_system"]:
        raise HTTPFault(403, f"rule:delete_{COLLECTIONS[collection][0]} is disallowed by policy",
                        kind="PolicyNotAuthorized")
    return doc


async def body_of(request: web.Request, member: str) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get(member), dict):
        raise BadRequest(f"Resource body required: {member}")
    return body[member]


def created(cloud: Cloud, kind: str, member: str, doc: dict) -> web.Response:
    return json_response({member: view(cloud, kind, doc)}, status=201)
