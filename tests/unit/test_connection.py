"""One Connection per cloud: one Session, each client made once, the network API by the profile."""

import pytest

from pipeline.cloud.connection import Connection
from pipeline.settings.clouds import Cloud, cloud_from_entry
from pipeline.settings.profile import Profile

ENTRY = {"auth": {"auth_url": "http://127.0.0.1:1/v3", "username": "u", "password": "p",
                  "project_name": "p"}, "region_name": "RegionOne"}


def connection(network_api: str) -> Connection:
    profile = Profile(name="x", path="x.yaml", data={
        "name": "x", "image": {"disk_formats": ["qcow2"]},
        "network": {"api": network_api, "external": "floating"}})
    config = cloud_from_entry("c", dict(ENTRY))
    return Connection(Cloud(config=config, profile=profile, disk_format="qcow2"))


@pytest.mark.parametrize("network_api, neutron, nova_network", [
    ("neutron", True, False),        # HP-like, DreamHost-like, OVH-like, vexxhost-like
    ("nova-network", False, True),   # auro-like
    ("none", False, False),          # Rackspace-like
])
def test_network_clients_follow_the_profile(network_api, neutron, nova_network):
    c = connection(network_api).clients
    assert (c.neutron is not None, c.nova_network is not None) == (neutron, nova_network)


def test_one_session_and_one_client_per_service():
    conn = connection("nova-network")
    assert conn.session is conn.session
    assert conn.compute is conn.compute and conn.object_store is conn.object_store
    assert conn.clients is conn.clients
    assert conn.clients.nova.ad is conn.clients.nova_network.ad is conn.compute
    assert conn.compute.session is conn.object_store.session is conn.session
