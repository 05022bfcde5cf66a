"""Neutron v2.0: router:external networks, security groups and rules, floating IPs, ports.

What the pipeline's test boot does on a Neutron cloud, checked against
upstream Neutron and the local cloud (docs/upstream.md cites the neutron-lib
api-ref and neutron files); the targets are in conftest.py.
"""

from __future__ import annotations

import uuid

from tests.conformance.compute.conftest import (
    create_server,
    neutron_error,
    smallest_flavor,
    wait_server,
)

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _external(neutron) -> dict:
    nets = neutron.get("/networks", params={"router:external": "true"}).json()["networks"]
    assert nets, "no router:external network"
    assert all(n["router:external"] is True for n in nets)
    return next(n for n in nets if n["subnets"])


def test_router_external_networks(neutron):
    """The external network is listed by ``router:external=true`` and has a subnet."""
    ext = _external(neutron)
    others = neutron.get("/networks", params={"router:external": "false"}).json()
    assert ext["id"] not in {n["id"] for n in others["networks"]}
    subnet = neutron.get(f"/subnets/{ext['subnets'][0]}").json()["subnet"]
    assert subnet["network_id"] == ext["id"] and subnet["ip_version"] == 4


def test_security_group_rules(neutron):
    """A new group has Neutron's two egress rules; ingress rules keep ethertype,
    remote_ip_prefix and description; a duplicate is 409, a prefix of the other
    family 400."""
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    resp = neutron.post("/security-groups", json={"security_group": {
        "name": name, "description": "conformance group"}})
    assert resp.status_code == 201, resp.text
    group = resp.json()["security_group"]
    try:
        assert group["description"] == "conformance group"
        egress = sorted((r["direction"], r["ethertype"], r["remote_ip_prefix"])
                        for r in group["security_group_rules"])
        assert egress == [("egress", "IPv4", None), ("egress", "IPv6", None)]
        made = {}
        for ethertype, prefix in (("IPv4", "203.0.113.0/24"), ("IPv6", "2001:db8::/32")):
            rule = {"security_group_id": group["id"], "direction": "ingress",
                    "ethertype": ethertype, "protocol": "tcp", "port_range_min": 22,
                    "port_range_max": 22, "remote_ip_prefix": prefix,
                    "description": f"ssh over {ethertype}"}
            resp = neutron.post("/security-group-rules",
                                json={"security_group_rule": rule})
            assert resp.status_code == 201, resp.text
            made[ethertype] = resp.json()["security_group_rule"]
            for key, value in rule.items():
                assert made[ethertype][key] == value, (key, made[ethertype])
            again = neutron.post("/security-group-rules",
                                 json={"security_group_rule": rule})
            neutron_error(again, 409, "SecurityGroupRuleExists")
        conflict = neutron.post("/security-group-rules", json={"security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4",
            "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
            "remote_ip_prefix": "2001:db8::/32"}})
        neutron_error(conflict, 400, "SecurityGroupRuleParameterConflict")
        listed = neutron.get("/security-group-rules",
                             params={"security_group_id": group["id"],
                                     "direction": "ingress"}).json()["security_group_rules"]
        assert {r["id"] for r in listed} == {r["id"] for r in made.values()}
        rule_id = made["IPv4"]["id"]
        assert neutron.delete(f"/security-group-rules/{rule_id}").status_code == 204
        neutron_error(neutron.get(f"/security-group-rules/{rule_id}"), 404,
                      "SecurityGroupRuleNotFound")
    finally:
        deleted = neutron.delete(f"/security-groups/{group['id']}")
    assert deleted.status_code == 204, deleted.text


def test_floating_ip_and_port_of_server(nova, neutron, servers, boot_image):
    """A server booted at 2.1 on a network named by uuid has a fixed address there, on
    the port ``device_id`` finds; a floating IP from the external network is associated
    with that port by ``port_id``, released and deleted."""
    nets = neutron.get("/networks", params={"router:external": "false"}).json()["networks"]
    net = next(n for n in nets if n["subnets"])
    resp = create_server(nova, servers, boot_image, smallest_flavor(nova),
                         networks=[{"uuid": net["id"]}])
    server = wait_server(nova, resp.json()["server"]["id"])
    ports = neutron.get("/ports", params={"device_id": server["id"]}).json()["ports"]
    assert len(ports) == 1, ports
    port = ports[0]
    assert port["network_id"] == net["id"]
    assert port["device_owner"].startswith("compute:")
    fixed = port["fixed_ips"][0]["ip_address"]
    entries = server["addresses"][net["name"]]
    assert [(e["addr"], e["version"], e["OS-EXT-IPS:type"]) for e in entries] == [
        (fixed, 4, "fixed")]

    ext = _external(neutron)
    resp = neutron.post("/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "description": "conformance"}})
    assert resp.status_code == 201, resp.text
    fip = resp.json()["floatingip"]
    try:
        assert (fip["port_id"], fip["fixed_ip_address"]) == (None, None)
        assert fip["floating_network_id"] == ext["id"]
        assert fip["description"] == "conformance"
        resp = neutron.put(f"/floatingips/{fip['id']}",
                           json={"floatingip": {"port_id": port["id"]}})
        assert resp.status_code == 200, resp.text
        associated = resp.json()["floatingip"]
        assert (associated["port_id"], associated["fixed_ip_address"]) == (port["id"], fixed)
        by_port = neutron.get("/floatingips", params={"port_id": port["id"]}).json()
        assert [f["id"] for f in by_port["floatingips"]] == [fip["id"]]
        resp = neutron.put(f"/floatingips/{fip['id']}",
                           json={"floatingip": {"port_id": None}})
        assert resp.status_code == 200, resp.text
        assert resp.json()["floatingip"]["port_id"] is None
    finally:
        deleted = neutron.delete(f"/floatingips/{fip['id']}")
    assert deleted.status_code == 204, deleted.text
    neutron_error(neutron.get(f"/floatingips/{fip['id']}"), 404, "FloatingIPNotFound")


def test_neutron_error_body(neutron):
    message = neutron_error(neutron.get(f"/networks/{UNKNOWN}"), 404, "NetworkNotFound")
    assert message == f"Network {UNKNOWN} could not be found."
    # attributes are validated before anything is looked up (neutron/api/v2/base.py
    # prepare_request_body: webob's HTTPBadRequest)
    bad = neutron.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": UNKNOWN, "direction": "sideways"}})
    message = neutron_error(bad, 400, "HTTPBadRequest")
    assert message == "Invalid input for direction. Reason: sideways is not in valid_values."
