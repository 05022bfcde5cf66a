"""imagefleet's test boot against upstream Nova (fake driver) and Neutron.

``verify_image`` with the ``cloud-only`` check, as the demo project's member,
on a profile of a floating-IP cloud with security groups: it must register the
keypair, make the security group and open the check port's rule, boot the
server to ACTIVE on the named tenant network, attach a floating IP from
``public`` to the server's port, read the console, and then remove every one
of them; each is looked up afterwards through the APIs and must be gone.

Upstream lists a 0 GiB flavor beside its disked ones, which Nova boots for
admins only: the flavor choice must pass it over (the local cloud cannot show
that, ``differences.py``).
"""

from __future__ import annotations

import os

import pytest

from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.verify import verify_image
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import Profile, load_profiles, load_schema, validate
from tests.conformance.conftest import UpstreamCompute
from tests.conftest import REPO

pytestmark = pytest.mark.upstream

COMPUTE = {"api": "nova", "min_ram_mb": 64, "boot_timeout": 300}
NETWORK = {"api": "neutron", "external": "floating", "floating_ip": "required",
           "network": "demo-net", "floating_network": "public", "security_groups": True}


def floating_cloud(compute: UpstreamCompute) -> Cloud:
    """The shipped upstream profile with a compute and network section of the
    floating-IP shape, for the demo member's clouds.yaml entry."""
    shipped = load_profiles(REPO / "config" / "vendors")["upstream"]
    data = {**shipped.data, "compute": COMPUTE, "network": NETWORK}
    validate(data, load_schema("vendor"), str(shipped.path))
    config = load_clouds(compute.target.clouds_yaml)[compute.target.demo_cloud]
    return Cloud(config=config, profile=Profile(shipped.name, data, shipped.path),
                 disk_format="raw")


def test_cloud_only_verify_makes_and_removes_keypair_group_rule_server_and_address(
        upstream_compute: UpstreamCompute, tmp_path):
    target = upstream_compute.target
    sess = target.session(target.demo_cloud)
    nova, neutron = target.compute(sess), target.network(sess)
    build = BuildInfo(build_id=f"upverify{os.getpid()}", digest="sha256:" + "ab" * 32,
                      image_name="cirros-fake")

    record = verify_image(floating_cloud(upstream_compute), upstream_compute.resources["image"],
                          build, work_dir=tmp_path, check="cloud-only", poll=0.5)

    assert record.verified and record.check == "cloud-only", record
    assert record.flavor == "m1.nano"           # not the admin-only 0 GiB flavor
    assert record.network == upstream_compute.resources["tenant_network"]
    assert record.address_source and "floating" in record.address_source, record
    assert record.address.startswith("172.24.4."), record.address   # public's subnet
    assert record.check_port == 22 and record.check_cidr, record
    assert record.console and "FAKE CONSOLE OUTPUT" in " ".join(record.console)
    name = record.server_name

    assert nova.get(f"/servers/{record.server_id}").status_code == 404
    keypairs = [k["keypair"]["name"] for k in nova.get("/os-keypairs").json()["keypairs"]]
    assert name not in keypairs
    groups = neutron.get(f"/v2.0/security-groups?name={name}").json()["security_groups"]
    assert groups == []
    floating = neutron.get(f"/v2.0/floatingips?floating_ip_address={record.address}")
    assert floating.json()["floatingips"] == []
    ports = neutron.get(f"/v2.0/ports?device_id={record.server_id}").json()["ports"]
    assert ports == []
