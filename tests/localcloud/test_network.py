"""Neutron and nova-network on the personalities that have them, over HTTP with keystoneauth1.

Networks with router:external or a provider network, subnets, ports, floating
IPs (allocate, associate, disassociate, quota), security groups and rules, in
Neutron's error shapes; nova-network's os-floating-ips, os-floating-ip-pools and
os-security-groups on the auro-like shape. Servers here never boot a guest
(the ``no_answer`` fault); what answers on port 22 is ``test_boot``'s part.
"""

from __future__ import annotations

import pytest
from keystoneauth1 import exceptions as ks_exc

from tests.localcloud.cloudops import (
    addresses,
    create_server,
    floating_ip,
    knock,
    neutron,
    nova,
    open_port_22,
    wait_gone,
    wait_status,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def cloud(lcc, csessions, request):
    """(name, nova, neutron or None); afterwards nothing made by the test is left."""
    name = request.param
    compute = nova(csessions[name], lcc, name)
    try:
        network = neutron(csessions[name], lcc, name)
    except ks_exc.EndpointNotFound:
        network = None
    yield name, compute, network
    lcc.clear_faults()
    for server in compute.get("/servers").json()["servers"]:
        compute.delete(f"/servers/{server['id']}")
        wait_gone(compute, server["id"])
    if network is not None:
        for kind in ("floatingips", "ports", "security-groups"):
            key = kind.replace("-", "_")
            for item in network.get(f"/{kind}", raise_exc=False).json().get(key, []):
                if item.get("name") != "default":
                    network.delete(f"/{kind}/{item['id']}")
        for rule in network.get("/security-group-rules").json()["security_group_rules"]:
            if rule["direction"] == "ingress" and rule["remote_group_id"] is None:
                network.delete(f"/security-group-rules/{rule['id']}")
        for net in network.get("/networks").json()["networks"]:
            network.delete(f"/networks/{net['id']}", raise_exc=False)
    left = lcc.leftovers(name)
    left.pop("images", None)
    assert left == {}


def _silent_server(lcc, name, compute, tiny, **extra) -> dict:
    lcc.add_fault(name, kind="no_answer")
    return wait_status(compute, create_server(compute, tiny[name], **extra)["id"], "ACTIVE")


@pytest.mark.parametrize("cloud, external, shared, provider", [
    ("hp-like", True, False, False), ("dreamhost-like", True, False, False),
    ("vexxhost-like", True, True, False), ("ovh-like", False, True, True)],
    indirect=["cloud"])
def test_networks_in_each_shape(cloud, external, shared, provider):
    name, _, network = cloud
    nets = network.get("/networks").json()["networks"]
    outside = [n for n in nets if n["router:external"] or n.get("provider:physical_network")]
    assert len(outside) == 1
    assert outside[0]["router:external"] is external and outside[0]["shared"] is shared
    assert ("provider:physical_network" in outside[0]) is provider
    subnet = network.get(f"/subnets/{outside[0]['subnets'][0]}").json()["subnet"]
    assert subnet["cidr"].startswith("127.1")
    only = network.get("/networks", params={"router:external": "true"}).json()["networks"]
    assert [n["id"] for n in only] == ([outside[0]["id"]] if external else [])


@pytest.mark.parametrize("cloud", ["rackspace-like", "auro-like"], indirect=True)
def test_no_neutron_where_the_shape_has_none(cloud):
    name, _, network = cloud
    assert network is None


@pytest.mark.parametrize("cloud", ["vexxhost-like"], indirect=True)
def test_tenant_network_subnet_port_and_floating_ip(cloud, lcc, tiny):
    name, compute, network = cloud
    net = network.post("/networks", json={"network": {"name": "mine"}}).json()["network"]
    bad = network.post("/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                    "cidr": "10.0.0.0/24"}}, raise_exc=False)
    assert bad.status_code == 400 and bad.json()["NeutronError"]["type"] == "InvalidInput"
    routable = lcc.config(name)["imagefleet"]["overrides"]["network"]["routable_cidrs"][0]
    prefix = f"127.{int(routable.split('.')[1]) + 100}.7"       # the cloud's private slice
    subnet = network.post("/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": f"{prefix}.0/24", "ip_version": 4}}).json()["subnet"]
    assert subnet["gateway_ip"] == f"{prefix}.1"
    server = _silent_server(lcc, name, compute, tiny, networks=[{"uuid": net["id"]}])
    assert list(server["addresses"]) == ["mine"]
    assert addresses(server)[0].startswith(f"{prefix}.")
    fip_id, address = floating_ip(lcc, compute.session, name, server)
    server = compute.get(f"/servers/{server['id']}").json()["server"]
    assert addresses(server, "floating") == [address]
    in_use = network.delete(f"/networks/{net['id']}", raise_exc=False)
    assert in_use.status_code == 409 and in_use.json()["NeutronError"]["type"] == "NetworkInUse"
    # two candidate networks now: Nova wants to be told which
    ambiguous = compute.post("/servers", json={"server": {
        "name": "x", "imageRef": tiny[name], "flavorRef": "1"}}, raise_exc=False)
    assert ambiguous.status_code == 409 and "conflictingRequest" in ambiguous.json()


@pytest.mark.parametrize("cloud", ["hp-like"], indirect=True)
def test_floating_ips_on_a_tenant_network_shape(cloud, lcc, tiny):
    name, compute, network = cloud
    ext = network.get("/networks", params={"name": "Ext-Net"}).json()["networks"][0]
    tenant = network.get("/networks", params={"router:external": "false"}).json()["networks"][0]
    server = _silent_server(lcc, name, compute, tiny)
    port = network.get("/ports", params={"device_id": server["id"]}).json()["ports"][0]
    assert port["device_owner"] == "compute:nova" and port["network_id"] == tenant["id"]
    not_external = network.post("/floatingips", json={"floatingip": {
        "floating_network_id": tenant["id"]}}, raise_exc=False)
    assert not_external.status_code == 400
    fip = network.post("/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"]}}).json()["floatingip"]
    assert fip["status"] == "DOWN" and fip["port_id"] is None
    address = fip["floating_ip_address"]
    assert knock(address, timeout=1) == "refused"           # not associated: not there
    rule = open_port_22(lcc, compute.session, name)
    assert knock(port["fixed_ips"][0]["ip_address"], timeout=1) == "refused"
    fip = network.put(f"/floatingips/{fip['id']}", json={"floatingip": {
        "port_id": port["id"]}}).json()["floatingip"]
    assert fip["status"] == "ACTIVE" and fip["fixed_ip_address"] == addresses(server)[0]
    assert knock(address, timeout=1) == "silent"            # associated: the guest's port 22
    shown = compute.get(f"/servers/{server['id']}").json()["server"]
    assert addresses(shown, "floating") == [address]
    network.put(f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
    assert knock(address, timeout=1) == "refused"
    assert lcc.resources(name)["floating_ips"][0]["port_id"] is None
    network.delete(f"/security-group-rules/{rule}")


@pytest.mark.parametrize("cloud", ["dreamhost-like"], indirect=True)
def test_floating_ip_quota(cloud, lcc):
    name, _, network = cloud
    ext = network.get("/networks", params={"router:external": "true"}).json()["networks"][0]
    body = {"floatingip": {"floating_network_id": ext["id"]}}
    lcc.add_fault(name, kind="quota_exceeded", resource="floating_ips")
    over = network.post("/floatingips", json=body, raise_exc=False)
    assert over.status_code == 409
    assert over.json() == {"NeutronError": {
        "type": "OverQuota", "message": "Quota exceeded for resources: ['floatingip'].",
        "detail": ""}}
    lcc.admin("PUT", f"/admin/clouds/{name}/quotas", json={"floating_ips": 1})
    try:
        network.post("/floatingips", json=body)
        assert network.post("/floatingips", json=body, raise_exc=False).status_code == 409
        pid = lcc.clouds[name]["credentials"]["project_id"]
        detail = network.get(f"/quotas/{pid}/details.json").json()["quota"]["floatingip"]
        assert detail == {"limit": 1, "used": 1, "reserved": 0}
    finally:
        lcc.admin("PUT", f"/admin/clouds/{name}/quotas", json={"floating_ips": 10})


@pytest.mark.parametrize("cloud", ["ovh-like"], indirect=True)
def test_no_floating_ips_on_a_routable_port_shape(cloud):
    name, _, network = cloud
    assert network.get("/floatingips", raise_exc=False).status_code == 404
    aliases = {e["alias"] for e in network.get("/extensions").json()["extensions"]}
    assert "router" not in aliases and "provider" in aliases


@pytest.mark.parametrize("cloud", ["hp-like"], indirect=True)
def test_security_groups_and_rules(cloud, lcc):
    name, _, network = cloud
    group = network.post("/security-groups", json={"security_group": {
        "name": "web"}}).json()["security_group"]
    assert sorted(r["direction"] for r in group["security_group_rules"]) == ["egress", "egress"]
    body = {"security_group_rule": {"security_group_id": group["id"], "direction": "ingress",
                                    "protocol": "tcp", "port_range_min": 22,
                                    "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}}
    rule = network.post("/security-group-rules", json=body).json()["security_group_rule"]
    assert rule["ethertype"] == "IPv4" and rule["port_range_max"] == 22
    again = network.post("/security-group-rules", json=body, raise_exc=False)
    assert again.status_code == 409
    assert again.json()["NeutronError"]["message"] == (
        f"Security group rule already exists. Rule id is {rule['id']}.")
    for change, kind in (({"protocol": "gre!"}, "SecurityGroupRuleInvalidProtocol"),
                         ({"port_range_min": 0}, "SecurityGroupInvalidPortValue"),
                         ({"direction": "sideways"}, "HTTPBadRequest")):
        bad = {"security_group_rule": dict(body["security_group_rule"], **change)}
        response = network.post("/security-group-rules", json=bad, raise_exc=False)
        assert (response.status_code, response.json()["NeutronError"]["type"]) == (400, kind)
    lcc.add_fault(name, kind="quota_exceeded", resource="security_group_rules")
    body["security_group_rule"]["port_range_min"] = 80
    body["security_group_rule"]["port_range_max"] = 80
    assert network.post("/security-group-rules", json=body,
                        raise_exc=False).json()["NeutronError"]["type"] == "OverQuota"
    default = network.get("/security-groups", params={"name": "default"}).json()[
        "security_groups"][0]
    refused = network.delete(f"/security-groups/{default['id']}", raise_exc=False)
    assert refused.status_code == 409
    assert [r["id"] for r in lcc.resources(name)["security_group_rules"]] == [rule["id"]]
    missing = network.get("/security-groups/nope", raise_exc=False)
    assert missing.status_code == 404
    assert missing.json()["NeutronError"]["type"] == "SecurityGroupNotFound"


@pytest.mark.parametrize("cloud", ["auro-like"], indirect=True)
def test_nova_network_floating_ips_and_security_groups(cloud, lcc, tiny):
    name, compute, _ = cloud
    assert compute.get("/os-floating-ip-pools").json() == {
        "floating_ip_pools": [{"name": "nova"}]}
    server = _silent_server(lcc, name, compute, tiny)
    fip = compute.post("/os-floating-ips", json={"pool": "nova"}).json()["floating_ip"]
    assert fip["instance_id"] is None and fip["pool"] == "nova"
    assert fip["ip"].startswith("127.1")
    compute.post(f"/servers/{server['id']}/action", json={"addFloatingIp": {
        "address": fip["ip"]}})
    shown = compute.get(f"/os-floating-ips/{fip['id']}").json()["floating_ip"]
    assert shown["instance_id"] == server["id"] and shown["fixed_ip"] == addresses(server)[0]
    assert knock(fip["ip"], timeout=1) == "reset"            # no rule opens port 22 yet
    group = next(g for g in compute.get("/os-security-groups").json()["security_groups"]
                 if g["name"] == "default")
    body = {"security_group_rule": {"parent_group_id": group["id"], "ip_protocol": "tcp",
                                    "from_port": 22, "to_port": 22, "cidr": "127.0.0.0/8"}}
    rule = compute.post("/os-security-group-rules", json=body).json()["security_group_rule"]
    assert rule["ip_range"] == {"cidr": "127.0.0.0/8"}
    dup = compute.post("/os-security-group-rules", json=body, raise_exc=False)
    assert dup.status_code == 400 and "badRequest" in dup.json()
    assert knock(fip["ip"], timeout=1) == "silent"
    compute.post(f"/servers/{server['id']}/action", json={"removeFloatingIp": {
        "address": fip["ip"]}})
    assert knock(fip["ip"], timeout=1) == "refused"
    lcc.add_fault(name, kind="quota_exceeded", resource="floating_ips")
    over = compute.post("/os-floating-ips", json={}, raise_exc=False)
    assert over.status_code == 403
    assert over.json()["forbidden"]["message"] == "IP allocation over quota in pool nova."
    compute.delete(f"/os-floating-ips/{fip['id']}")
    compute.delete(f"/os-security-group-rules/{rule['id']}")
    made = compute.post("/os-security-groups", json={"security_group": {
        "name": "extra", "description": "d"}}).json()["security_group"]
    compute.delete(f"/os-security-groups/{made['id']}")
    assert compute.get("/os-floating-ips/nope", raise_exc=False).json()[
        "itemNotFound"]["code"] == 404
