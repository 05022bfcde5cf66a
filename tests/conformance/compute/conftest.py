"""The compute and network targets of the conformance suite, and what their checks share.

``target`` here (module scope; it replaces the image checks' ``target`` for the
modules in this directory) is one of:

* ``upstream``: Nova (fake driver), Placement and Neutron on loopback, from the
  session fixture ``upstream_compute``; it skips cleanly while that fixture does
  not exist or cannot start. Checks run as the member of project ``demo``, as a
  public cloud's user would; the admin only makes the flavors the checks need.
* ``localcloud``: the local cloud serving ``upstream-compute.yaml`` beside this
  file. Its servers would boot real qemu guests; a standing ``no_answer`` fault
  makes them go ACTIVE without one, which is what the fake driver does.

``fail_next_build`` makes the next server fail to schedule: upstream by a
flavor larger than any fake host, locally by the ``server_error`` fault
(Nova's NoValidHost message). ``zero_disk_flavor`` is a flavor with a 0 GiB
root disk (upstream: made by the admin; the local cloud has none here).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from keystoneauth1 import adapter, session

from tests.conformance.conftest import TARGETS, Target, create_image, wait_for, wait_image

NO_VALID_HOST = "No valid host was found"
# more disk than the fake host has (600000 GiB, nova/virt/fake.py FakeDriver), which no
# quota counts (RAM and cores are within the demo project's quota)
HUGE_FLAVOR = "conformance.no-host-disk"
ZERO_DISK_FLAVOR = "conformance.zero-disk"
OCTET = "application/octet-stream"


@dataclass
class ComputeTarget(Target):
    """A target with compute and network; ``fail_next_build`` returns the flavor to use."""

    fail_next_build: Callable[[], str] = field(default=lambda: "", repr=False)
    zero_disk_flavor: Callable[[], str | None] = field(default=lambda: None, repr=False)

    def network(self, sess: session.Session) -> adapter.Adapter:
        """Neutron at the endpoint version discovery finds (paths without /v2.0)."""
        return adapter.Adapter(sess, service_type="network", interface="public",
                               region_name=self.config()["region_name"], raise_exc=False,
                               min_version="2.0", max_version="2.latest")


def _upstream(request) -> ComputeTarget:
    if os.environ.get("IMAGEFLEET_UPSTREAM") == "skip":
        pytest.skip("IMAGEFLEET_UPSTREAM=skip")
    try:
        up = request.getfixturevalue("upstream_compute")
    except pytest.FixtureLookupError:
        pytest.skip("the upstream compute target (Nova, Placement, Neutron: fixture "
                    "upstream_compute) is not built in this tree")
    admin = up.target
    nova = admin.compute(admin.session())
    default_rule_templates(admin.network(admin.session()))

    def made_flavor(name: str, ram: int, disk: int) -> str:
        """A flavor called ``name`` (or, for a 0 GiB disk, any flavor with none)."""
        found = nova.get("/flavors/detail").json()["flavors"]
        flavor = next((f for f in found if f["name"] == name or disk == 0 == f["disk"]),
                      None)
        if flavor is None:
            resp = nova.post("/flavors", json={"flavor": {
                "name": name, "ram": ram, "vcpus": 1, "disk": disk}})
            assert resp.status_code == 200, resp.text
            flavor = resp.json()["flavor"]
        return flavor["id"]
    return ComputeTarget("upstream", admin.clouds_yaml, admin.demo_cloud,
                         fail_next_build=lambda: made_flavor(HUGE_FLAVOR, 64, 700000),
                         zero_disk_flavor=lambda: made_flavor(ZERO_DISK_FLAVOR, 512, 0))


def default_rule_templates(neutron: adapter.Adapter) -> None:
    """Neutron's egress rules for new groups, as a deployment has them.

    ``neutron-db-manage upgrade`` inserts these templates (alembic 2023.2
    ``c33da356b165_security_group_default_rules``); the upstream target builds
    its SQLite schema from the models, which leaves the table empty, so the
    admin adds them through Neutron's own API (``/v2.0/default-security-group-rules``).
    """
    listed = neutron.get("/v2.0/default-security-group-rules")
    assert listed.status_code == 200, listed.text
    have = {(r["direction"], r["ethertype"]) for r in listed.json()[
        "default_security_group_rules"] if r["used_in_non_default_sg"]}
    for ethertype in ("IPv4", "IPv6"):
        if ("egress", ethertype) not in have:
            resp = neutron.post("/v2.0/default-security-group-rules", json={
                "default_security_group_rule": {
                    "direction": "egress", "ethertype": ethertype, "used_in_default_sg": True,
                    "used_in_non_default_sg": True,
                    "description": "Legacy default SG rule for egress traffic"}})
            assert resp.status_code == 201, resp.text


def _local(request) -> ComputeTarget:
    lc = request.getfixturevalue("local_cloud")
    cloud = "upstream-compute"
    if not any(f["kind"] == "no_answer" for f in lc.faults(cloud)):
        lc.add_fault(cloud, kind="no_answer", service="compute", times=None)

    def server_error() -> str:
        lc.add_fault(cloud, kind="server_error", service="compute", method="POST",
                     path="/servers$", message=f"{NO_VALID_HOST}. There are not enough "
                                               "hosts available.")
        return smallest_flavor(ComputeTarget("localcloud", lc.clouds_yaml, cloud))

    def zero_disk() -> str | None:
        local = ComputeTarget("localcloud", lc.clouds_yaml, cloud)
        flavors = local.compute(local.session()).get("/flavors/detail").json()["flavors"]
        return next((f["id"] for f in flavors if f["disk"] == 0), None)
    return ComputeTarget("localcloud", lc.clouds_yaml, cloud, fail_next_build=server_error,
                         zero_disk_flavor=zero_disk)


@pytest.fixture(scope="module", params=TARGETS)
def target(request) -> ComputeTarget:
    return _upstream(request) if request.param == "upstream" else _local(request)


@pytest.fixture(scope="module")
def sess(target) -> session.Session:
    return target.session()


@pytest.fixture(scope="module")
def nova(target, sess) -> adapter.Adapter:
    return target.compute(sess)


@pytest.fixture(scope="module")
def neutron(target, sess) -> adapter.Adapter:
    return target.network(sess)


@pytest.fixture(scope="module")
def boot_image(target, sess, qcow2_data) -> Iterator[str]:
    """An active image to boot (the fake driver and no_answer never read its bytes)."""
    images = target.image(sess)
    made: list[str] = []
    doc = create_image(images, made, f"conformance-boot-{uuid.uuid4().hex[:8]}")
    resp = images.put(f"/images/{doc['id']}/file", data=qcow2_data,
                      headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    wait_image(images, doc["id"])
    yield doc["id"]
    images.delete(f"/images/{doc['id']}")


def smallest_flavor(target: Target | adapter.Adapter) -> str:
    """The id of the smallest flavor with a disk (image-backed servers need one)."""
    nova = target if isinstance(target, adapter.Adapter) else \
        ComputeTarget(target.name, target.clouds_yaml, target.cloud).compute(target.session())
    flavors = [f for f in nova.get("/flavors/detail").json()["flavors"]
               if f["disk"] > 0 and not f["name"].startswith("conformance.")]
    return min(flavors, key=lambda f: (f["ram"], f["disk"], f["vcpus"]))["id"]


@pytest.fixture(scope="module")
def servers(nova) -> Iterator[list[str]]:
    """Ids of servers the module's checks made; deleted together at its end, and waited
    for (one wait for all: a delete takes seconds upstream)."""
    made: list[str] = []
    yield made
    for server_id in made:
        nova.delete(f"/servers/{server_id}")
    for server_id in made:
        wait_for(lambda s=server_id: nova.get(f"/servers/{s}").status_code == 404, 120,
                 f"server {server_id} to be deleted")


def create_server(nova, servers: list[str], image: str, flavor: str, version: str = "2.1",
                  expect: int = 202, **fields: Any):
    """POST /servers at ``version``; the response (its id is recorded for cleanup)."""
    body = {"name": f"conformance-{uuid.uuid4().hex[:8]}", "imageRef": image,
            "flavorRef": flavor, **fields}
    resp = nova.post("/servers", json={"server": body}, microversion=version)
    assert resp.status_code == expect, resp.text
    if resp.status_code == 202:
        servers.append(resp.json()["server"]["id"])
    return resp


def wait_server(nova, server_id: str, status: str = "ACTIVE", version: str = "2.1",
                timeout: float = 90) -> dict:
    def current():
        doc = nova.get(f"/servers/{server_id}", microversion=version).json()["server"]
        if doc["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {server_id} went ERROR: {doc.get('fault')}")
        return doc if doc["status"] == status else None
    return wait_for(current, timeout, f"server {server_id} to be {status}", every=0.5)


def nova_error(resp, status: int, name: str) -> str:
    """Nova's error body: ``{name: {"code", "message"}}``; the message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    return body[name]["message"]


def neutron_error(resp, status: int, kind: str) -> str:
    """Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``; the message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body["NeutronError"]) == {"type", "message", "detail"}, body
    assert body["NeutronError"]["type"] == kind, body
    return body["NeutronError"]["message"]
