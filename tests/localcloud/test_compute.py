"""Nova on every personality, over HTTP with keystoneauth1: flavors, keypairs, servers,
the address shape of each talk, quotas and the compute faults.

No guest boots here: the faults that stop before qemu (``server_error``) or
replace it (``no_answer``: ACTIVE, but port 22 never says anything) let every
shape be checked in a second; ``test_boot`` boots real guests.
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from tests.localcloud.cloudops import (
    addresses,
    close_port_22,
    create_server,
    knock,
    nova,
    open_port_22,
    wait_gone,
    wait_status,
)
from tests.localcloud.conftest import ALL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBUcFT8ITaw5G9kRSCnPS9VlBlLnWHCOSwr3dm9vZ"
              "IMG test@imagefleet")
PRIVATE = ipaddress.ip_network("127.192.0.0/10")     # 127.(200+n): never routable


@pytest.fixture
def compute(lcc, csessions, request):
    """Nova of the parametrized cloud; afterwards no server, keypair or rule is left."""
    cloud = request.param
    adapter = nova(csessions[cloud], lcc, cloud)
    yield cloud, adapter
    for server in adapter.get("/servers").json()["servers"]:
        adapter.delete(f"/servers/{server['id']}")
        wait_gone(adapter, server["id"])
    for pair in adapter.get("/os-keypairs").json()["keypairs"]:
        adapter.delete(f"/os-keypairs/{pair['keypair']['name']}")
    left = lcc.leftovers(cloud)
    left.pop("images", None)
    assert left == {}


every_cloud = pytest.mark.parametrize("compute", ALL, indirect=True)


@every_cloud
def test_version_document_and_flavors(compute, lcc):
    cloud, adapter = compute
    root = adapter.get_endpoint().split("/v2.1/")[0]
    versions = adapter.session.get(root, authenticated=False).json()["versions"]
    assert [v["id"] for v in versions] == ["v2.0", "v2.1"]
    flavors = adapter.get("/flavors/detail").json()["flavors"]
    tiny = next(f for f in flavors if f["id"] == "1")
    assert (tiny["name"], tiny["ram"], tiny["vcpus"]) == ("m1.tiny", 512, 1)
    missing = adapter.get("/flavors/99", raise_exc=False)
    assert missing.status_code == 404
    assert missing.json() == {"itemNotFound": {"message": "Flavor 99 could not be found.",
                                               "code": 404}}


@pytest.mark.parametrize("compute", ["hp-like"], indirect=True)
def test_keypairs(compute, lcc):
    cloud, adapter = compute
    made = adapter.post("/os-keypairs", json={"keypair": {"name": "mine",
                                                          "public_key": PUBLIC_KEY}}).json()
    assert made["keypair"]["fingerprint"].count(":") == 15
    generated = adapter.post("/os-keypairs", json={"keypair": {"name": "gen"}}).json()
    assert generated["keypair"]["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    names = {k["keypair"]["name"] for k in adapter.get("/os-keypairs").json()["keypairs"]}
    assert names == {"mine", "gen"}
    assert {k["name"] for k in lcc.resources(cloud)["keypairs"]} == {"mine", "gen"}
    again = adapter.post("/os-keypairs", json={"keypair": {"name": "mine",
                                                           "public_key": PUBLIC_KEY}},
                         raise_exc=False)
    assert again.status_code == 409 and "conflictingRequest" in again.json()
    bad = adapter.post("/os-keypairs", json={"keypair": {"name": "bad", "public_key": "x"}},
                       raise_exc=False)
    assert bad.status_code == 400 and "badRequest" in bad.json()
    lcc.add_fault(cloud, kind="quota_exceeded", resource="key_pairs")
    over = adapter.post("/os-keypairs", json={"keypair": {"name": "more"}}, raise_exc=False)
    assert over.status_code == 403
    assert over.json()["forbidden"]["message"] == "Quota exceeded, too many key pairs."


@pytest.mark.parametrize("compute", ["dreamhost-like"], indirect=True)
def test_create_errors_in_novas_shape(compute, lcc, tiny):
    cloud, adapter = compute
    cases = [({"imageRef": "nope"}, "Image nope could not be found."),
             ({"flavorRef": "99"}, "Invalid flavorRef provided."),
             ({"key_name": "nope"}, "Invalid key_name provided."),
             ({"networks": [{"uuid": "nope"}]}, "Network nope could not be found."),
             ({"user_data": "not base64!"}, None)]
    for change, message in cases:
        body = {"name": "x", "imageRef": tiny[cloud], "flavorRef": "1", **change}
        response = adapter.post("/servers", json={"server": body}, raise_exc=False)
        assert response.status_code == 400, change
        assert response.json()["badRequest"]["code"] == 400
        if message:
            assert response.json()["badRequest"]["message"] == message


@every_cloud
def test_address_shape_of_each_talk(compute, lcc, tiny):
    """Which addresses a server gets, and which of them answer on port 22."""
    cloud, adapter = compute
    lcc.add_fault(cloud, kind="no_answer")
    server = create_server(adapter, tiny[cloud])
    server = wait_status(adapter, server["id"], "ACTIVE")
    fixed = addresses(server, "fixed")
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in fixed)
    cidr = lcc.config(cloud)["imagefleet"]["overrides"]["network"]["routable_cidrs"][0]
    routable = [a for a in fixed if ipaddress.ip_address(a) in ipaddress.ip_network(cidr)]
    private = [a for a in fixed if ipaddress.ip_address(a) in PRIVATE]
    networks = set(server["addresses"])
    expected = {"rackspace-like": ({"public", "private"}, 1, 1),
                "hp-like": ({"private-network"}, 0, 1),
                "dreamhost-like": ({"private-network"}, 0, 1),
                "vexxhost-like": ({"public"}, 1, 0),
                "ovh-like": ({"Ext-Net"}, 1, 0),
                "auro-like": ({"private"}, 0, 1)}[cloud]
    assert (networks, len(routable), len(private)) == expected
    for address in private:
        assert knock(address, timeout=1) == "refused"      # a fixed private address: never
    rule = open_port_22(lcc, adapter.session, cloud)
    for address in routable:
        assert knock(address, timeout=1) == "silent"       # the guest never answers
    close_port_22(lcc, adapter.session, cloud, rule)
    if rule:
        for address in routable:
            assert knock(address, timeout=1) == "reset"    # no rule: nothing answers


@pytest.mark.parametrize("compute", ["hp-like", "auro-like"], indirect=True)
def test_server_error_fault(compute, lcc, tiny):
    cloud, adapter = compute
    lcc.add_fault(cloud, kind="server_error", method="POST", path="/servers$",
                  message="No valid host was found. There are not enough hosts available.")
    server = create_server(adapter, tiny[cloud], name="doomed")
    server = wait_status(adapter, server["id"], "ERROR", timeout=10)
    assert server["fault"]["code"] == 500
    assert server["fault"]["message"].startswith("No valid host was found")
    assert server["OS-EXT-STS:vm_state"] == "error"
    assert lcc.resources(cloud)["qemu_processes"] == []
    detail = adapter.get("/servers/detail").json()["servers"]
    assert [s["status"] for s in detail] == ["ERROR"]


@pytest.mark.parametrize("compute", ["vexxhost-like"], indirect=True)
def test_slow_build_fault(compute, lcc, tiny):
    cloud, adapter = compute
    lcc.add_fault(cloud, kind="slow_build", seconds=2)
    lcc.add_fault(cloud, kind="no_answer")
    began = time.monotonic()
    server = create_server(adapter, tiny[cloud])
    assert adapter.get(f"/servers/{server['id']}").json()["server"]["status"] == "BUILD"
    wait_status(adapter, server["id"], "ACTIVE", timeout=10)
    assert time.monotonic() - began >= 2


@pytest.mark.parametrize("compute", ["ovh-like"], indirect=True)
def test_quotas_and_limits(compute, lcc, tiny):
    cloud, adapter = compute
    pid = lcc.clouds[cloud]["credentials"]["project_id"]
    quota = adapter.get(f"/os-quota-sets/{pid}").json()["quota_set"]
    assert quota["instances"] == 10 and quota["id"] == pid
    lcc.admin("PUT", f"/admin/clouds/{cloud}/quotas", json={"instances": 0})
    try:
        response = adapter.post("/servers", json={"server": {
            "name": "x", "imageRef": tiny[cloud], "flavorRef": "1"}}, raise_exc=False)
        assert response.status_code == 403
        assert response.json()["forbidden"]["message"] == (
            "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances")
        absolute = adapter.get("/limits").json()["limits"]["absolute"]
        assert absolute["maxTotalInstances"] == 0 and absolute["totalInstancesUsed"] == 0
    finally:
        lcc.admin("PUT", f"/admin/clouds/{cloud}/quotas", json={"instances": 10})


@pytest.mark.parametrize("compute", ["rackspace-like"], indirect=True)
def test_console_output_and_delete(compute, lcc, tiny):
    cloud, adapter = compute
    lcc.add_fault(cloud, kind="no_answer")
    server = wait_status(adapter, create_server(adapter, tiny[cloud])["id"], "ACTIVE")
    assert server["config_drive"] == "True"                 # static networking: always
    output = adapter.post(f"/servers/{server['id']}/action",
                          json={"os-getConsoleOutput": {"length": 10}}).json()
    assert output == {"output": ""}
    unknown = adapter.post(f"/servers/{server['id']}/action", json={"os-fly": {}},
                           raise_exc=False)
    assert unknown.status_code == 400
    assert adapter.delete(f"/servers/{server['id']}").status_code == 204
    wait_gone(adapter, server["id"])
    assert knock(addresses(server)[0], timeout=1) == "refused"
