"""Personalities are data: every shipped file validates, code never names a vendor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from localcloud import personality
from localcloud.server import clouds_yaml_entry
from tests.localcloud.conftest import ALL

PACKAGE = Path(personality.__file__).parent


def test_every_shipped_personality_validates():
    assert personality.available() == sorted(ALL)
    for name in ALL:
        loaded = personality.load(name)
        assert loaded.name == name
        assert loaded.description


def test_no_code_asks_for_a_vendor_by_name():
    vendors = re.compile(r"rackspace|hp-like|dreamhost|vexxhost|ovh|auro", re.IGNORECASE)
    for source in PACKAGE.glob("*.py"):
        if source.name == "testing.py":
            continue
        hits = [line for line in source.read_text().splitlines() if vendors.search(line)]
        assert not hits, f"{source.name} names a vendor: {hits}"


@pytest.mark.parametrize("name, expected", [
    ("rackspace-like", {"identity_api_version": "2.0", "image_api_version": "2",
                        "image_format": "vhd", "image_api_use_tasks": True,
                        "floating_ip_source": "None", "secgroup_source": "None"}),
    ("hp-like", {"identity_api_version": "3", "image_api_version": "1",
                 "image_format": "qcow2", "floating_ip_source": "neutron"}),
    ("dreamhost-like", {"identity_api_version": "3", "image_api_version": "2",
                        "image_format": "raw", "floating_ip_source": "neutron"}),
    ("vexxhost-like", {"identity_api_version": "3", "image_api_version": "2",
                       "image_format": "qcow2", "floating_ip_source": "neutron"}),
    ("ovh-like", {"identity_api_version": "3", "image_api_version": "2",
                  "image_format": "qcow2", "floating_ip_source": "None",
                  "networks": [{"name": "Ext-Net", "routes_externally": True,
                                "nat_destination": False}]}),
    ("auro-like", {"identity_api_version": "2.0", "image_api_version": "2",
                   "image_format": "qcow2", "floating_ip_source": "nova",
                   "secgroup_source": "nova"}),
])
def test_clouds_yaml_hints_follow_the_flags(name, expected):
    assert personality.load(name).clouds_yaml_hints() == expected


def _valid() -> dict:
    return yaml.safe_load((PACKAGE / "personalities" / "ovh-like.yaml").read_text())


@pytest.mark.parametrize("change, message", [
    ({"upload": ["post"]}, "'post' is not one of"),      # the vendor profiles' word is put
    ({"image_api": ["v1"], "upload": ["glance-direct"]}, "glance-direct needs image API v2"),
    ({"image_api": ["v1"], "upload": ["task"]}, "task needs image API v2"),
    ({"services": ["identity", "image"], "upload": ["task"]}, "object-store"),
    ({"identity": ["v2.0"], "auth_type": "application_credential"}, "need identity v3"),
    ({"disk_formats": ["qcow3"]}, "disk_formats"),
    ({"network": "nova-network"}, "is not of type 'object'"),
    ({"flavor": "m1.tiny"}, "Additional properties"),
    ({"services": ["identity", "image", "object-store", "compute"]},
     "needs the network service"),
    ({"network": {"api": "none", "external": "routable-port", "security_groups": True}},
     "needs network.api neutron"),
    ({"network": {"api": "none", "external": "routable-port", "security_groups": True},
      "services": ["identity", "image", "object-store", "compute"]}, "needs neutron"),
    ({"network": {"api": "none", "external": "floating", "security_groups": True},
      "services": ["identity", "image", "object-store", "compute"]}, "need a network API"),
    ({"services": ["identity", "image", "object-store"]}, "need the compute service"),
])
def test_incoherent_personalities_are_refused(change, message):
    data = dict(_valid(), **change)
    with pytest.raises(personality.PersonalityError, match=message):
        personality.from_dict(data, "test")


def test_a_new_vendor_is_a_new_file(tmp_path):
    data = dict(_valid(), name="newco-like", regions=["nc-1"], disk_formats=["raw"],
                catalog="versioned")
    path = tmp_path / "newco-like.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = personality.load(str(path))
    assert loaded.name == "newco-like" and loaded.region == "nc-1"


def test_clouds_yaml_entry_carries_profile_and_auth(tmp_path):
    from localcloud.cloud import Cloud

    creds = {"username": "demo", "password": "pw", "project_name": "demo",
             "domain_name": "Default", "application_credential_id": "ac",
             "application_credential_secret": "sec"}
    for name, auth_type in (("vexxhost-like", "v3applicationcredential"),
                            ("rackspace-like", "password")):
        cloud = Cloud(name=name, personality=personality.load(name), store=None, faults=None,
                      port=5000, token_ttl=60, credentials=creds, services={})
        entry = clouds_yaml_entry(cloud)
        assert entry["imagefleet"]["profile"] == name
        assert entry["auth_type"] == auth_type
        assert entry["auth"]["auth_url"].startswith("http://127.0.0.1:5000/identity/")
