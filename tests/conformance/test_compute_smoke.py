"""The upstream compute/network target works end to end through its APIs alone.

Against ``upstream_compute`` (upstream/compute.py), as the demo tenant with a
keystoneauth1 session from the generated clouds.yaml: a keypair, a server on
the tenant network that the real API, scheduler, conductor and compute manager
(fake virt driver) take to ACTIVE with a port Neutron bound to the compute
host, its console output, a floating IP on ``public`` associated with the
server's port, then everything deleted and seen gone.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import UpstreamCompute, wait_for

pytestmark = pytest.mark.upstream
SERVER_TIMEOUT = 180            # a loaded two-core machine; the fake driver itself is instant


def _one(resp, key: str) -> dict:
    assert resp.status_code == 200, resp.text
    found = resp.json()[key]
    assert len(found) == 1, found
    return found[0]


def test_server_with_floating_ip_round_trip(upstream_compute: UpstreamCompute, unique: str):
    target = upstream_compute.target
    sess = target.session(target.demo_cloud)
    compute, network = target.compute(sess), target.network(sess)
    image = target.image(sess)

    flavor = next(f for f in compute.get("/flavors").json()["flavors"] if f["name"] == "m1.nano")
    image_id = _one(image.get("/images?name=cirros-fake"), "images")["id"]
    tenant_net = _one(network.get("/v2.0/networks?name=demo-net"), "networks")["id"]
    public = _one(network.get("/v2.0/networks?name=public"), "networks")
    assert public["router:external"] is True

    resp = compute.post("/os-keypairs", json={"keypair": {"name": unique}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["keypair"]["private_key"].startswith("-----BEGIN")

    resp = compute.post("/servers", json={"server": {
        "name": unique, "imageRef": image_id, "flavorRef": flavor["id"],
        "key_name": unique, "networks": [{"uuid": tenant_net}]}})
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    fip_id = None
    try:
        def active():
            doc = compute.get(f"/servers/{server_id}").json()["server"]
            assert doc["status"] != "ERROR", doc.get("fault")
            return doc if doc["status"] == "ACTIVE" else None
        server = wait_for(active, SERVER_TIMEOUT, f"server {server_id} ACTIVE", every=0.5)
        assert server["key_name"] == unique
        assert "demo-net" in server["addresses"], server["addresses"]

        resp = compute.post(f"/servers/{server_id}/action",
                            json={"os-getConsoleOutput": {"length": 50}})
        assert resp.status_code == 200, resp.text
        assert "FAKE CONSOLE OUTPUT" in resp.json()["output"]    # nova/virt/fake.py

        port = _one(network.get(f"/v2.0/ports?device_id={server_id}"), "ports")
        assert port["network_id"] == tenant_net
        assert port["device_owner"].startswith("compute:")
        # binding:* is admin-only: the port is bound to nova-compute's host.
        bound = target.network(target.session()).get(f"/v2.0/ports/{port['id']}").json()["port"]
        assert bound["binding:host_id"] == upstream_compute.host
        assert bound["binding:vif_type"] not in ("unbound", "binding_failed"), bound

        resp = network.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": public["id"]}})
        assert resp.status_code == 201, resp.text
        fip_id = resp.json()["floatingip"]["id"]
        resp = network.put(f"/v2.0/floatingips/{fip_id}",
                           json={"floatingip": {"port_id": port["id"]}})
        assert resp.status_code == 200, resp.text
        fip = network.get(f"/v2.0/floatingips/{fip_id}").json()["floatingip"]
        assert fip["port_id"] == port["id"]
        assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    finally:
        if fip_id:
            assert network.delete(f"/v2.0/floatingips/{fip_id}").status_code == 204
        assert compute.delete(f"/servers/{server_id}").status_code == 204
        assert compute.delete(f"/os-keypairs/{unique}").status_code == 202

    wait_for(lambda: compute.get(f"/servers/{server_id}").status_code == 404,
             SERVER_TIMEOUT, f"server {server_id} gone", every=0.5)
    assert network.get(f"/v2.0/floatingips/{fip_id}").status_code == 404
    assert network.get(f"/v2.0/ports?device_id={server_id}").json()["ports"] == []
    assert compute.get(f"/os-keypairs/{unique}").status_code == 404
