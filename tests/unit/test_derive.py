"""Which imagefleet profile openstacksdk's vendor data implies: a pure decision, per shape."""

from __future__ import annotations

import pytest

from pipeline.settings.derive import derive_network, derive_profile, entry_networks, vendor_facts


def facts(**given):
    return {k: (v, "openstacksdk vendor x") for k, v in given.items()}


@pytest.mark.parametrize("given, network, because", [
    # Rackspace-like: no neutron, a public address (openstacksdk vendors/rackspace.json)
    ({"has_network": False, "floating_ip_source": "None"},
     {"api": "none", "external": "public", "floating_ip": "never"}, "has_network: False"),
    ({"floating_ip_source": "None"},
     {"api": "none", "external": "public", "floating_ip": "never"}, "floating_ip_source: None"),
    # HP-like: tenant network, neutron floating IP
    ({"requires_floating_ip": True},
     {"api": "neutron", "external": "floating", "floating_ip": "required",
      "security_groups": True}, "requires_floating_ip: true"),
    ({"requires_floating_ip": "true", "floating_ip_source": "neutron"},
     {"api": "neutron", "external": "floating", "floating_ip": "required",
      "security_groups": True}, "requires_floating_ip: true"),
    # auro-like: nova-network floating IP
    ({"requires_floating_ip": True, "floating_ip_source": "nova"},
     {"api": "nova-network", "external": "floating", "floating_ip": "required",
      "security_groups": True}, "requires_floating_ip: true"),
    # vexxhost/OVH-like and dreamhost-like say nothing the network path follows from
    ({"requires_floating_ip": False}, None, None),
    ({}, None, None),
])
def test_derive_network(given, network, because):
    found = derive_network(facts(**given))
    if network is None:
        assert found is None
    else:
        assert found[0] == network and found[1].startswith(because)


def test_derive_profile_rackspace_shape():
    data, sources = derive_profile("rax", facts(
        image_format="vhd", image_api_use_tasks=True, has_network=False,
        disable_vendor_agent={"vm_mode": "hvm", "xenapi_use_agent": "False"}), "rackspace")
    assert data["name"] == "derived-rackspace"
    assert data["image"] == {"disk_formats": ["vhd"], "upload": ["task"],
                             "properties": {"vm_mode": "hvm", "xenapi_use_agent": "False"}}
    assert sources["format"] == "image_format: vhd (openstacksdk vendor x)"


@pytest.mark.parametrize("given, words", [
    ({"has_network": False}, "says no image_format"),
    ({"image_format": "raw"}, "says nothing about floating IPs"),      # dreamcompute
])
def test_derive_profile_refuses_what_the_data_leaves_open(given, words):
    with pytest.raises(ValueError, match=words):
        derive_profile("c", facts(**given), "x")


def test_the_entry_wins_over_the_vendor_and_defaults_are_no_facts():
    found = vendor_facts({"image_format": "raw"}, "rackspace",
                         {"image_format": "vhd", "has_network": False})
    assert found == {"image_format": ("raw", "clouds.yaml"),
                     "has_network": (False, "openstacksdk vendor rackspace")}


@pytest.mark.parametrize("networks, expected", [
    ([{"name": "backend", "default_interface": True}], {"network": "backend"}),
    ([{"name": "private", "default_interface": True, "nat_destination": True},
      {"name": "public", "nat_source": True, "routes_externally": True}],
     {"network": "private", "floating_network": "public"}),
    ([{"name": "public", "routes_externally": True}], {}),
    (None, {}),
])
def test_clouds_yaml_networks_name_the_boot_network_and_the_floating_source(networks,
                                                                            expected):
    assert entry_networks({"networks": networks} if networks else {}) == expected
