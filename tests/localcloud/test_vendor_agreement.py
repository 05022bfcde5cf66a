"""Each personality and the pipeline's vendor profile of the same name describe one vendor.

The local cloud serves the personality (``localcloud/personalities/NAME.yaml``);
the pipeline publishes with the profile (``config/vendors/NAME.yaml``). Where
both state a fact they must state the same one, in the same words. The profile
is read as YAML, with its schema's defaults: the local cloud never imports
``pipeline/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from localcloud import personality

VENDORS = Path(__file__).resolve().parents[2] / "config" / "vendors"


def profile(name: str) -> dict:
    path = VENDORS / f"{name}.yaml"
    assert path.exists(), f"personality {name} has no vendor profile {path}"
    return yaml.safe_load(path.read_text())


@pytest.fixture(params=personality.available())
def pair(request) -> tuple[personality.Personality, dict]:
    return personality.load(request.param), profile(request.param)


def test_same_disk_formats_most_preferred_first(pair):
    shape, vendor = pair
    assert list(shape.disk_formats) == vendor["image"]["disk_formats"]


def test_the_container_format_is_served(pair):
    shape, vendor = pair
    assert vendor["image"].get("container_format", "bare") in shape.container_formats


def test_same_upload_mechanisms(pair):
    shape, vendor = pair
    assert set(shape.upload) == set(vendor["image"].get("upload", ["put"]))


def test_a_pinned_image_api_is_served(pair):
    shape, vendor = pair
    pinned = vendor["image"].get("api_version")
    assert pinned is None or f"v{pinned}" in shape.image_api


def test_compute_where_the_profile_boots(pair):
    shape, vendor = pair
    boots = vendor.get("compute", {}).get("api", "nova") != "none"
    assert ("compute" in shape.services) == boots


def test_config_drive_consistent(pair):
    shape, vendor = pair
    assert shape.compute["config_drive"] is vendor.get("compute", {}).get("config_drive",
                                                                          False)


def test_keys_reach_the_guest(pair):
    """A profile that boots without a config drive is for a cloud with a metadata service."""
    shape, vendor = pair
    if "compute" in shape.services:
        drive = vendor.get("compute", {}).get("config_drive", False)
        assert drive or shape.compute["metadata_service"]


def test_same_network_path(pair):
    """Public address, floating IP (neutron or nova-network), external network, routable port."""
    shape, vendor = pair
    net, theirs = shape.network, vendor["network"]
    assert (net["api"], net["external"]) == (theirs["api"], theirs["external"])
    assert net["security_groups"] is theirs.get("security_groups", net["security_groups"])
    required = theirs.get("floating_ip", "auto") == "required"
    assert required == (net["external"] == "floating")
    assert shape.floating_ips or theirs.get("floating_ip", "auto") == "never"


def test_networks_the_profile_names_exist(pair):
    shape, vendor = pair
    net, theirs = shape.network, vendor["network"]
    if "network" in theirs:
        assert theirs["network"] in (net.get("external_network"), net.get("tenant_network"),
                                     *net["project_networks"])
    if "floating_network" in theirs:
        assert theirs["floating_network"] in (net.get("external_network"),
                                              net.get("floating_pool", "nova"))
