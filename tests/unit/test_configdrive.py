"""What a config drive tells the guest: keys, network layout, user data."""

from __future__ import annotations

import json

import pytest

from pipeline.core.errors import ConfigError
from pipeline.image.configdrive import NetworkSpec, config_drive_files, network_data

MAC = "52:54:00:12:34:56"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample imagefleet"
UUID = "0b5e5a0c-1b0c-4c1e-9a35-6f1b0f1a2b3c"


def _files(**kwargs) -> dict[str, bytes]:
    args = {"uuid": UUID, "name": "probe", "public_keys": {"imagefleet": KEY},
            "networks": [NetworkSpec(mac=MAC)]}
    args.update(kwargs)
    return config_drive_files(**args)


def _json(files, path):
    return json.loads(files[path])


@pytest.mark.parametrize("case, spec, expected", [
    ("dhcp (most clouds)", NetworkSpec(mac=MAC),
     {"type": "ipv4_dhcp"}),
    ("static, no DHCP server (rackspace-like)",
     NetworkSpec(mac=MAC, dhcp=False, address="10.0.2.15/24", gateway="10.0.2.2",
                 dns=("10.0.2.3",)),
     {"type": "ipv4", "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}],
      "services": [{"type": "dns", "address": "10.0.2.3"}]}),
    ("static without gateway (isolated network)",
     NetworkSpec(mac=MAC, dhcp=False, address="192.168.7.9/22"),
     {"type": "ipv4", "ip_address": "192.168.7.9", "netmask": "255.255.252.0", "routes": []}),
])
def test_network_data_shapes(case, spec, expected):
    data = network_data([spec])
    [link] = data["links"]
    [net] = data["networks"]
    assert link["ethernet_mac_address"] == MAC
    assert net["link"] == link["id"]
    assert net["id"] == "network0"
    for key, value in expected.items():
        assert net[key] == value, case
    if spec.dhcp:
        assert "ip_address" not in net


def test_network_data_dns_services_are_top_level_and_unique():
    specs = [NetworkSpec(mac=MAC, dhcp=False, address="10.0.0.5/24", dns=("8.8.8.8",)),
             NetworkSpec(mac="52:54:00:AB:CD:EF", dns=("8.8.8.8", "1.1.1.1"))]
    data = network_data(specs)
    assert data["services"] == [{"type": "dns", "address": "8.8.8.8"},
                                {"type": "dns", "address": "1.1.1.1"}]
    assert [n["link"] for n in data["networks"]] == [link["id"] for link in data["links"]]
    assert data["links"][1]["ethernet_mac_address"] == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize("address", [None, "10.0.2.15", "not-an-ip/24", "fe80::1/64"])
def test_static_network_needs_ipv4_cidr(address):
    with pytest.raises(ConfigError, match="address"):
        network_data([NetworkSpec(mac=MAC, dhcp=False, address=address)])


@pytest.mark.parametrize("keys", [
    {"imagefleet": KEY},
    {"imagefleet": KEY, "operator": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC operator"},
])
def test_meta_data_carries_keys_both_ways(keys):
    meta = _json(_files(public_keys=keys), "openstack/latest/meta_data.json")
    assert meta["public_keys"] == keys
    assert meta["keys"] == [{"name": n, "type": "ssh", "data": k} for n, k in keys.items()]
    assert meta["uuid"] == UUID
    assert meta["name"] == meta["hostname"] == "probe"
    assert meta["launch_index"] == 0
    assert meta["availability_zone"] == "nova"
    assert meta["files"] == []


@pytest.mark.parametrize("user_data, present", [
    (None, False),
    ("#cloud-config\nruncmd: [true]\n", True),
    (b"#!/bin/sh\necho hi\n", True),
])
def test_layout_latest_and_dated_copy(user_data, present):
    files = _files(user_data=user_data)
    for version in ("latest", "2015-10-15"):
        base = f"openstack/{version}/"
        for name in ("meta_data.json", "network_data.json", "vendor_data.json"):
            assert base + name in files
        assert _json(files, base + "vendor_data.json") == {}
        assert (base + "user_data" in files) is present
        if present:
            expected = user_data.encode() if isinstance(user_data, str) else user_data
            assert files[base + "user_data"] == expected
    assert files["openstack/latest/meta_data.json"] == files["openstack/2015-10-15/meta_data.json"]


def test_injected_files_and_random_seed():
    files = _files(injected_files={"/etc/motd": b"hello\n"}, random_seed=b"\x01" * 16)
    meta = _json(files, "openstack/latest/meta_data.json")
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    assert files["openstack/content/0000"] == b"hello\n"
    assert meta["random_seed"] == "AQEBAQEBAQEBAQEBAQEBAQ=="


def test_pure_same_input_same_drive():
    assert _files() == _files()
