"""Real boots: the uploaded tiny image runs in qemu on every personality, and its port 22
answers only by the path that vendor allows.

One server per cloud, all created at once (the local cloud boots two at a time).
Rackspace-like: the public address answers at once (no security groups), the
guest took its address statically from the config drive. HP-like and
DreamHost-like: nothing until a floating IP is associated, then nothing until a
rule opens port 22. vexxhost-like and OVH-like: the routable fixed address,
once a rule opens it. auro-like: a nova-network floating IP and an
os-security-groups rule. Fixed private addresses never answer. Only
rackspace-like (which always attaches one) and hp-like are asked for a config
drive; the other guests read their own instance id and key from the metadata
service at 169.254.169.254.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time

import pytest

from tests.localcloud.cloudops import (
    addresses,
    close_port_22,
    create_server,
    floating_ip,
    knock,
    nova,
    open_port_22,
    release_floating_ip,
    shape,
    wait_banner,
    wait_gone,
    wait_status,
)
from tests.localcloud.conftest import ALL, wait_for
from tests.localcloud.tinyimage import tiny_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBUcFT8ITaw5G9kRSCnPS9VlBlLnWHCOSwr3dm9vZ"
              "IMG boot@imagefleet")
DRIVE = ["rackspace-like", "hp-like"]
NO_DRIVE = [c for c in ALL if c not in DRIVE]


def key_of(cloud: str) -> str:
    """Each cloud's keypair differs, so a guest shows whose key it was given."""
    return PUBLIC_KEY.replace("boot@imagefleet", f"boot@{cloud}")
BOOT_TIMEOUT = 240          # TCG, two boots at a time on two cores


@pytest.fixture(scope="module")
def booted(lcc, csessions, tiny):
    """cloud -> (nova adapter, server) for one guest per cloud, created together."""
    servers = {}
    for cloud in ALL:
        compute = nova(csessions[cloud], lcc, cloud)
        compute.post("/os-keypairs", json={"keypair": {"name": "boot",
                                                       "public_key": key_of(cloud)}})
        server = create_server(compute, tiny[cloud], name=f"boot-{cloud}", key_name="boot",
                               config_drive=cloud in DRIVE,
                               user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode())
        servers[cloud] = (compute, server)
    yield {cloud: (compute, wait_status(compute, server["id"], "ACTIVE", "ERROR"))
           for cloud, (compute, server) in servers.items()}
    for compute, server in servers.values():
        compute.delete(f"/servers/{server['id']}", raise_exc=False)
        wait_gone(compute, server["id"])
        compute.delete("/os-keypairs/boot")


@pytest.mark.parametrize("cloud", ALL)
def test_port_22_answers_only_by_the_vendors_path(cloud, booted, lcc, csessions):
    compute, server = booted[cloud]
    assert server["status"] == "ACTIVE", server.get("fault")
    net, sess = shape(cloud), csessions[cloud]
    cidr = lcc.config(cloud)["imagefleet"]["overrides"]["network"]["routable_cidrs"][0]
    routable = [a for a in addresses(server) if a.startswith(cidr.rsplit(".", 2)[0] + ".")]
    private = [a for a in addresses(server) if a not in routable]
    fip_id, rule = None, None
    try:
        if net["external"] == "floating":
            assert routable == [] and private
            assert knock(private[0], timeout=1) == "refused"
            fip_id, address = floating_ip(lcc, sess, cloud, server)
        else:
            address = routable[0]
        if net["security_groups"]:
            assert knock(address, timeout=1) == "reset"    # reachable, but no rule for 22
            rule = open_port_22(lcc, sess, cloud)
        seconds = wait_banner(address, BOOT_TIMEOUT)
        print(f"\n{cloud}: {address}:22 answered {seconds:.1f} s after the path opened")
        for other in private:
            assert knock(other, timeout=1) == "refused"
        if fip_id:
            release_floating_ip(lcc, sess, cloud, fip_id)
            fip_id = None
            assert knock(address, timeout=1) == "refused"
    finally:
        close_port_22(lcc, sess, cloud, rule)
        if fip_id:
            release_floating_ip(lcc, sess, cloud, fip_id)
    console = compute.post(f"/servers/{server['id']}/action",
                           json={"os-getConsoleOutput": {"length": 50}}).json()["output"]
    assert "tiny: ready" in console
    static = "tiny: static 10.0.2.15/255.255.255.0 gateway 10.0.2.2" in console
    assert static == (cloud == "rackspace-like")           # config-drive static networking


@pytest.mark.parametrize("cloud", NO_DRIVE)
def test_a_guest_without_config_drive_reads_its_own_metadata(cloud, booted, lcc):
    """The guest fetched http://169.254.169.254/openstack/latest/meta_data.json from inside
    its namespace and got its own instance id and its own cloud's key."""
    compute, server = booted[cloud]
    assert server["status"] == "ACTIVE", server.get("fault")

    def console():
        text = compute.post(f"/servers/{server['id']}/action",
                            json={"os-getConsoleOutput": {"length": 80}}).json()["output"]
        return text if "tiny: metadata keys" in text or "tiny: no metadata" in text else None
    text = wait_for(console, timeout=BOOT_TIMEOUT, every=2)
    assert not (lcc.data_dir / "guests" / server["id"] / "disk.config").exists()
    assert f'tiny: metadata service "uuid": "{server["id"]}"' in text
    assert f'tiny: metadata keys "public_keys": {{"boot": "{key_of(cloud)}"}}' in text
    served = lcc.admin("GET", "/admin/guests")["metadata_requests"][server["id"]]
    assert "/openstack/latest/meta_data.json" in served


def _isoinfo(iso, *args: str) -> str:
    return subprocess.run(["isoinfo", "-i", str(iso), *args], capture_output=True,
                          check=True).stdout.decode(errors="replace")


@pytest.mark.parametrize("cloud, static", [("rackspace-like", True), ("hp-like", False)])
def test_config_drive_is_an_openstack_iso(cloud, static, booted, lcc):
    _, server = booted[cloud]
    iso = lcc.data_dir / "guests" / server["id"] / "disk.config"
    assert "Volume id: config-2" in _isoinfo(iso, "-d")
    listing = _isoinfo(iso, "-R", "-f")
    for name in ("meta_data.json", "network_data.json", "user_data", "vendor_data.json"):
        assert f"/openstack/latest/{name}" in listing
    meta = _isoinfo(iso, "-R", "-x", "/openstack/latest/meta_data.json")
    assert key_of(cloud) in meta and server["id"] in meta
    network = _isoinfo(iso, "-R", "-x", "/openstack/latest/network_data.json")
    assert ('"ip_address": "10.0.2.15"' in network) is static
    assert ('"ipv4_dhcp"' in network) is not static
    assert _isoinfo(iso, "-R", "-x", "/openstack/latest/user_data") == "#!/bin/sh\necho hi\n"


def test_the_image_is_never_written(booted, lcc):
    raw = tiny_image("raw").read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    blobs = [p for p in (lcc.data_dir / "blobs").iterdir()
             if p.stat().st_size == len(raw)]
    assert digest in {hashlib.sha256(p.read_bytes()).hexdigest() for p in blobs}
    _, server = booted["dreamhost-like"]
    info = subprocess.run(["qemu-img", "info", "-U", str(lcc.data_dir / "guests" / server["id"] /
                                                    "disk.qcow2")],
                          capture_output=True, text=True, check=True).stdout
    assert "backing file: " + str(lcc.data_dir / "blobs") in info


def test_qemu_death_is_an_error_and_delete_stops_qemu(booted, lcc):
    compute, server = booted["ovh-like"]
    guests = {g["server_id"]: g for g in lcc.admin("GET", "/admin/guests")["guests"]}
    pid = guests[server["id"]]["pid"]
    os.kill(pid, 9)
    failed = wait_status(compute, server["id"], "ERROR", timeout=20)
    assert "exited -9" in failed["fault"]["message"]
    assert knock(addresses(failed)[0], timeout=1) == "refused"
    compute2, other = booted["vexxhost-like"]
    pid = {g["server_id"]: g for g in lcc.admin("GET", "/admin/guests")["guests"]}[
        other["id"]]["pid"]
    compute2.delete(f"/servers/{other['id']}")
    wait_gone(compute2, other["id"])
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)
    assert other["id"] not in {p["server_id"] for p in lcc.resources(
        "vexxhost-like")["qemu_processes"]}
    assert not (lcc.data_dir / "guests" / other["id"]).exists()


def test_stopping_the_local_cloud_stops_every_guest(tmp_path):
    from localcloud.testing import running_cloud
    from tests.localcloud.cloudops import upload_image
    from tests.localcloud.conftest import make_session
    with running_cloud(["ovh-like"], tmp_path) as lc:
        sess = make_session(lc, "ovh-like")
        image = upload_image(lc, sess, "ovh-like", tiny_image("qcow2"))
        compute = nova(sess, lc, "ovh-like")
        ids = [create_server(compute, image, name=f"s{i}")["id"] for i in range(2)]
        for sid in ids:
            wait_status(compute, sid, "ACTIVE")
        pids = [g["pid"] for g in lc.admin("GET", "/admin/guests")["guests"]]
        assert len(pids) == 2
        began = time.monotonic()
    assert time.monotonic() - began < 15
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)
