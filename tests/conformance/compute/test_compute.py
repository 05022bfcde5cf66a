"""Nova v2.1: versions and microversions, flavors, keypairs, server create, faults, proxies.

Every assertion is Nova's documented behaviour (docs/upstream.md, "Compute and
network checks", cites the nova files); the targets are in conftest.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.conformance.compute.conftest import (
    NO_VALID_HOST,
    create_server,
    nova_error,
    smallest_flavor,
    wait_server,
)

UNKNOWN = "00000000-0000-4000-8000-000000000000"
# what every server shows at 2.1 (nova/api/openstack/compute/views/servers.py)
SERVER_KEYS_21 = {"id", "name", "status", "tenant_id", "user_id", "metadata", "hostId", "image",
                  "flavor", "created", "updated", "addresses", "accessIPv4", "accessIPv6",
                  "links", "key_name", "config_drive", "progress", "OS-DCF:diskConfig",
                  "OS-EXT-AZ:availability_zone", "OS-EXT-STS:vm_state",
                  "OS-EXT-STS:task_state", "OS-EXT-STS:power_state", "OS-SRV-USG:launched_at",
                  "OS-SRV-USG:terminated_at", "os-extended-volumes:volumes_attached"}
SINCE_237 = {"locked", "description", "tags"}          # 2.9, 2.19, 2.26


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def _compute_root(nova) -> str:
    return re.split(r"/v2(\.1)?(/|$)", nova.get_endpoint())[0]


def test_compute_version_document(nova):
    """v2.0 and v2.1 listed; v2.1 is CURRENT, from 2.1 to a maximum that has 2.37."""
    resp = nova.session.get(_compute_root(nova) + "/", authenticated=False)
    assert resp.status_code == 200, resp.text
    versions = {v["id"]: v for v in resp.json()["versions"]}
    assert set(versions) == {"v2.0", "v2.1"}
    assert (versions["v2.0"]["version"], versions["v2.0"]["min_version"]) == ("", "")
    current = versions["v2.1"]
    assert current["status"] == "CURRENT"
    assert current["min_version"] == "2.1"
    assert _version(current["version"]) >= (2, 37)


def test_microversion_headers(nova):
    """The version served is named in both headers; none asked is 2.1; latest is the max."""
    doc = nova.session.get(_compute_root(nova) + "/", authenticated=False).json()
    newest = next(v for v in doc["versions"] if v["id"] == "v2.1")["version"]
    for asked, served in ((None, "2.1"), ("2.37", "2.37"), ("latest", newest)):
        resp = nova.get("/flavors", microversion=asked) if asked else nova.get("/flavors")
        assert resp.status_code == 200, resp.text
        assert resp.headers["OpenStack-API-Version"] == f"compute {served}"
        assert resp.headers["X-OpenStack-Nova-API-Version"] == served
        assert {"OpenStack-API-Version", "X-OpenStack-Nova-API-Version"} <= {
            v.strip() for v in resp.headers["Vary"].split(",")}
    legacy = nova.get("/flavors", headers={"X-OpenStack-Nova-API-Version": "2.37"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.37"


@pytest.mark.parametrize("asked, status, name", [("2.9999", 406, "computeFault"),
                                                 ("2.x", 400, "badRequest")])
def test_microversion_refused(nova, asked, status, name):
    """Beyond the maximum: 406; not a version at all: 400."""
    resp = nova.get("/flavors", headers={"OpenStack-API-Version": f"compute {asked}"})
    nova_error(resp, status, name)


def test_flavors_shape(nova):
    listing = nova.get("/flavors").json()["flavors"]
    assert listing and all(set(f) == {"id", "name", "links"} for f in listing)
    detail = nova.get("/flavors/detail").json()["flavors"]
    assert {f["id"] for f in detail} == {f["id"] for f in listing}
    for flavor in detail:
        assert {"ram", "vcpus", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral",
                "os-flavor-access:is_public", "OS-FLV-DISABLED:disabled",
                "rxtx_factor"} <= set(flavor), flavor
        assert all(isinstance(flavor[k], int) for k in ("ram", "vcpus", "disk"))
    one = nova.get(f"/flavors/{detail[0]['id']}").json()["flavor"]
    assert one["name"] == detail[0]["name"]
    message = nova_error(nova.get("/flavors/no-such-flavor"), 404, "itemNotFound")
    assert message == "Flavor no-such-flavor could not be found."


def _openssh(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def _md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]),
                         usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@pytest.mark.parametrize("version, created, deleted", [("2.1", 200, 202), ("2.2", 201, 204)])
@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_keypair_import(nova, kind, version, created, deleted):
    """Import: the fingerprint is MD5 of the key blob; 2.2 adds ``type`` and 201/204."""
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = _openssh(key) + " conformance@imagefleet"
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    resp = nova.post("/os-keypairs", json={"keypair": {"name": name, "public_key": public}},
                     microversion=version)
    try:
        assert resp.status_code == created, resp.text
        made = resp.json()["keypair"]
        assert made["fingerprint"] == _md5_fingerprint(public)
        assert made["name"] == name and "private_key" not in made
        assert {"user_id", "public_key"} <= set(made)
        assert made.get("type") == (None if version == "2.1" else "ssh")
        again = nova.post("/os-keypairs", json={"keypair": {"name": name,
                                                            "public_key": public}},
                          microversion=version)
        nova_error(again, 409, "conflictingRequest")
        shown = nova.get(f"/os-keypairs/{name}", microversion=version).json()["keypair"]
        assert shown["fingerprint"] == made["fingerprint"]
        listed = nova.get("/os-keypairs", microversion=version).json()["keypairs"]
        assert name in {k["keypair"]["name"] for k in listed}
    finally:
        gone = nova.delete(f"/os-keypairs/{name}", microversion=version)
    assert gone.status_code == deleted, gone.text
    nova_error(nova.get(f"/os-keypairs/{name}"), 404, "itemNotFound")


def test_keypair_invalid_public_key(nova):
    """Base64 that is no OpenSSH key is refused (nova/crypto.py generate_fingerprint)."""
    bogus = "ssh-ed25519 " + base64.b64encode(b"not a key").decode()
    resp = nova.post("/os-keypairs", json={"keypair": {"name": "conformance-bogus",
                                                       "public_key": bogus}})
    assert "failed to generate fingerprint" in nova_error(resp, 400, "badRequest")


def test_server_networks_by_microversion(nova, servers, boot_image):
    """From 2.37 ``networks`` is required; ``auto``/``none`` only exist from 2.37."""
    flavor = smallest_flavor(nova)
    resp = create_server(nova, servers, boot_image, flavor, version="2.37", expect=400)
    assert "networks" in nova_error(resp, 400, "badRequest")
    for word in ("none", "auto"):
        resp = create_server(nova, servers, boot_image, flavor, version="2.1", expect=400,
                             networks=word)
        nova_error(resp, 400, "badRequest")


@pytest.fixture(scope="module")
def boots(target, nova, neutron, sess, servers, boot_image) -> dict:
    """The create answers of the module's servers, asked for together so that they
    build at the same time: ``none`` and ``auto`` at 2.37, and one no host can take.
    ``usable`` are the networks ``auto`` may choose from (the project's own unshared
    ones and the shared ones)."""
    mine = sess.get_project_id()
    usable = [n for n in neutron.get("/networks").json()["networks"]
              if n["shared"] or (n["project_id"] == mine and not n["router:external"])]
    flavor = smallest_flavor(nova)
    return {"usable": usable,
            "none": create_server(nova, servers, boot_image, flavor, version="2.37",
                                  networks="none"),
            "auto": create_server(nova, servers, boot_image, flavor, version="2.37",
                                  networks="auto", expect=202 if len(usable) == 1 else 409),
            "fault": create_server(nova, servers, boot_image, target.fail_next_build(),
                                   version="2.37", networks="none")}


def test_server_create_without_network(nova, boots):
    """``networks: none`` at 2.37: the create answer, then ACTIVE with no address."""
    resp = boots["none"]
    made = resp.json()["server"]
    assert {"id", "links", "adminPass", "OS-DCF:diskConfig"} <= set(made), made
    assert resp.headers["Location"].endswith(f"/servers/{made['id']}")
    active = wait_server(nova, made["id"], version="2.37")
    assert active["addresses"] == {}
    assert SERVER_KEYS_21 | SINCE_237 <= set(active), SERVER_KEYS_21 | SINCE_237 - set(active)
    assert active["locked"] is False and active["tags"] == []
    assert active["OS-EXT-STS:vm_state"] == "active"
    assert active["OS-EXT-STS:power_state"] == 1
    at_21 = nova.get(f"/servers/{made['id']}").json()["server"]
    assert SERVER_KEYS_21 <= set(at_21) and not SINCE_237 & set(at_21)


def test_server_create_auto_network(nova, boots):
    """``auto`` at 2.37 takes the one network the project may use; with several it is
    409 and a network must be named."""
    resp = boots["auto"]
    if len(boots["usable"]) != 1:
        assert nova_error(resp, 409, "conflictingRequest").startswith(
            "Multiple possible networks found")
        return
    active = wait_server(nova, resp.json()["server"]["id"], version="2.37")
    assert list(active["addresses"]) == [boots["usable"][0]["name"]]


def test_server_fault_shape(nova, boots):
    """A server no host can take goes ERROR with a fault {code, created, message};
    the details of a 500 fault are for admins only."""
    failed = wait_server(nova, boots["fault"].json()["server"]["id"], status="ERROR",
                         version="2.37")
    fault = failed["fault"]
    assert set(fault) == {"code", "created", "message"}, fault
    assert fault["code"] == 500
    assert fault["message"].startswith(NO_VALID_HOST)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fault["created"])
    assert failed["OS-EXT-STS:vm_state"] == "error"


def test_zero_disk_flavor_needs_a_volume(target, nova, servers, boot_image):
    """A member may not boot an image-backed server on a flavor with a 0 GiB disk
    (policy ``os_compute_api:servers:create:zero_disk_flavor``: admin only)."""
    flavor = target.zero_disk_flavor()
    assert flavor is not None, "no flavor with zero disk"
    assert nova.get(f"/flavors/{flavor}").json()["flavor"]["disk"] == 0
    resp = create_server(nova, servers, boot_image, flavor, version="2.37", expect=403,
                         networks="none")
    assert nova_error(resp, 403, "forbidden") == (
        "Only volume-backed servers are allowed for flavors with zero disk.")


def test_server_not_found(nova):
    message = nova_error(nova.get(f"/servers/{UNKNOWN}"), 404, "itemNotFound")
    assert message == f"Instance {UNKNOWN} could not be found."


@pytest.mark.parametrize("path, key", [("os-floating-ips", "floating_ips"),
                                       ("os-security-groups", "security_groups"),
                                       ("os-floating-ip-pools", "floating_ip_pools")])
def test_network_proxies_until_2_35(nova, path, key):
    """Nova's proxies to Neutron answer at 2.1..2.35 and are 404 from 2.36."""
    assert isinstance(nova.get(f"/{path}", microversion="2.35").json()[key], list)
    gone = nova.get(f"/{path}", microversion="2.36")
    assert nova_error(gone, 404, "itemNotFound") == "The resource could not be found."


def test_proxy_security_group_and_floating_ip(nova, neutron):
    """At 2.1: a group made through Nova is a Neutron group; a floating IP from the pool."""
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    resp = nova.post("/os-security-groups", json={"security_group": {
        "name": name, "description": "made through nova"}})
    assert resp.status_code == 200, resp.text
    group = resp.json()["security_group"]
    assert set(group) >= {"id", "name", "description", "tenant_id", "rules"}
    assert group["rules"] == []          # Neutron's egress rules are not shown
    assert neutron.get(f"/security-groups/{group['id']}").json()[
        "security_group"]["description"] == "made through nova"
    assert nova.delete(f"/os-security-groups/{group['id']}").status_code == 202
    missing = nova.post("/os-security-groups", json={"security_group": {"name": name}})
    nova_error(missing, 400, "badRequest")

    pool = nova.get("/os-floating-ip-pools").json()["floating_ip_pools"][0]["name"]
    resp = nova.post("/os-floating-ips", json={"pool": pool})
    assert resp.status_code == 200, resp.text
    fip = resp.json()["floating_ip"]
    assert (fip["pool"], fip["fixed_ip"], fip["instance_id"]) == (pool, None, None)
    assert neutron.get(f"/floatingips/{fip['id']}").json()[
        "floatingip"]["floating_ip_address"] == fip["ip"]
    assert nova.delete(f"/os-floating-ips/{fip['id']}").status_code == 202
    nova_error(nova.get(f"/os-floating-ips/{fip['id']}"), 404, "itemNotFound")
