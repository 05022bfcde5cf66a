"""What a test boot asks for: the flavor, the network, and the names that mark it as ours."""

from __future__ import annotations

import pytest

from pipeline.cloud import addresses as a
from pipeline.cloud import cleanup
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.verify import verify_image
from pipeline.core.errors import BootError, ConfigError
from pipeline.settings.clouds import Cloud, cloud_from_entry
from pipeline.settings.config import Profile


def flavor(fid, name, ram, disk, vcpus=1, disabled=False):
    return {"id": fid, "name": name, "ram": ram, "disk": disk, "vcpus": vcpus,
            "OS-FLV-DISABLED:disabled": disabled}


NOVA_DEFAULTS = [flavor("1", "m1.tiny", 512, 1), flavor("2", "m1.small", 2048, 20),
                 flavor("3", "m1.medium", 4096, 40), flavor("42", "m1.nano", 128, 1)]
RACKSPACE = [flavor("general1-1", "1 GB General Purpose v1", 1024, 20),
             flavor("2", "512MB Standard Instance", 512, 20),
             flavor("performance1-1", "1 GB Performance", 1024, 20),
             flavor("old", "256MB Standard Instance", 256, 10, disabled=True)]
# upstream Nova as upstream/seed.py makes it (devstack's shape): a 0 GiB flavor too
UPSTREAM_DEVSTACK = [flavor("42", "m1.nano", 64, 1), flavor("0", "m1.zero-disk", 64, 0),
                     flavor("2", "m1.small", 2048, 20)]
HP = [flavor("100", "standard.xsmall", 1024, 30), flavor("101", "standard.small", 2048, 60),
      flavor("102", "standard.medium", 4096, 90)]


@pytest.mark.parametrize("shape, flavors, ram, disk, name, expected", [
    ("nova defaults: smallest with 512 MB", NOVA_DEFAULTS, 512, 0, None, "m1.tiny"),
    ("nova defaults: a 2 GB image needs m1.small", NOVA_DEFAULTS, 512, 2, None, "m1.small"),
    ("rackspace-like: 512 MB standard", RACKSPACE, 512, 0, None, "512MB Standard Instance"),
    ("rackspace-like: a disabled flavor never", RACKSPACE, 256, 0, None,
     "512MB Standard Instance"),
    ("hp-like: nothing under 1 GB", HP, 512, 2, None, "standard.xsmall"),
    ("named by the profile", HP, 512, 0, "standard.medium", "standard.medium"),
    ("named by id", NOVA_DEFAULTS, 512, 0, "42", "m1.nano"),
    ("a zero-disk flavor beside disked ones: not for an image-backed server",
     UPSTREAM_DEVSTACK, 64, 0, None, "m1.nano"),
    ("a zero-disk flavor when the profile names it", UPSTREAM_DEVSTACK, 64, 0, "m1.zero-disk",
     "m1.zero-disk"),
])
def test_choose_flavor(shape, flavors, ram, disk, name, expected):
    assert a.choose_flavor(flavors, ram, disk, name)["name"] == expected


def test_a_volume_backed_server_takes_the_zero_disk_flavor():
    assert a.choose_flavor(UPSTREAM_DEVSTACK, 64, 0, volume_backed=True)["name"] == "m1.zero-disk"
    with pytest.raises(BootError, match=r"no flavor has 64 MB RAM and 1 GB disk .*: the ones "
                                        r"with the RAM have a 0 GiB root disk, which boots "
                                        r"only from a volume \(compute.boot_from_volume\)"):
        a.choose_flavor([flavor("0", "m1.zero-disk", 64, 0)], 64, 0)


def test_choose_flavor_errors_name_the_problem():
    with pytest.raises(ConfigError, match="no flavor 'huge'"):
        a.choose_flavor(NOVA_DEFAULTS, 512, 0, "huge")
    with pytest.raises(BootError, match="no flavor has 65536 MB RAM"):
        a.choose_flavor(NOVA_DEFAULTS, 65536, 0)


EXT = {"id": "ext", "name": "Ext-Net", "router:external": True, "shared": False}
PUBLIC = {"id": "pub", "name": "public", "router:external": True, "shared": True}
PRIVATE = {"id": "priv", "name": "private-network", "router:external": False, "shared": False}
PROVIDER = {"id": "prov", "name": "Ext-Net", "router:external": False, "shared": True}
SHARED = {"id": "shared", "name": "shared-net", "router:external": False, "shared": True}
SECOND = {"id": "priv2", "name": "other-network", "router:external": False, "shared": False}


@pytest.mark.parametrize("shape, networks, name, external, expected", [
    ("rackspace-like: no network API, nova picks", None, None, "public", None),
    ("auro-like: nova-network, nova picks", None, None, "floating", None),
    ("hp-like: the tenant network, not Ext-Net", [EXT, PRIVATE], None, "floating", "priv"),
    ("dreamhost-like", [PUBLIC, PRIVATE], None, "floating", "priv"),
    ("vexxhost-like: named public", [PUBLIC], "public", "external-network", "pub"),
    ("vexxhost-like unnamed: the external one", [PUBLIC, PRIVATE], None, "external-network",
     "pub"),
    ("ovh-like: the provider network", [PROVIDER], None, "routable-port", "prov"),
    ("several: the project's own one", [PRIVATE, SHARED], None, "floating", "priv"),
    ("no candidate: let the cloud choose", [EXT], None, "floating", None),
])
def test_choose_network(shape, networks, name, external, expected):
    assert a.choose_network(networks, name, external) == expected


@pytest.mark.parametrize("networks, name", [
    ([PRIVATE, SECOND], None),          # several of the project's own: must be named
    ([PRIVATE], "missing"),
    (None, "private-network"),          # a name where there is no network API
])
def test_choose_network_errors(networks, name):
    with pytest.raises(ConfigError):
        a.choose_network(networks, name)


def test_names_and_marks():
    name = cleanup.resource_name("137c561ac8b6")
    assert name.startswith("imagefleet-verify-137c561ac8b6-") and len(name) == 37
    assert cleanup.resource_name("b", "x") == "imagefleet-verify-b-x"
    meta = cleanup.server_metadata("b")
    assert meta == {"imagefleet_managed": "true", "imagefleet_build": "b"}
    assert cleanup.is_our_server({"name": name, "metadata": meta})
    assert not cleanup.is_our_server({"name": name, "metadata": {}})       # not marked
    assert not cleanup.is_our_server({"name": "web-1", "metadata": meta})  # not named
    assert not cleanup.is_our_name("imagefleet-admin")


def test_a_cloud_without_compute_is_recorded_not_booted(tmp_path):
    profile = Profile(name="upstream", path="upstream.yaml", data={
        "name": "upstream", "image": {"disk_formats": ["qcow2"]}, "compute": {"api": "none"},
        "network": {"api": "none", "external": "none"}})
    cloud = Cloud(config=cloud_from_entry("up", {}),
                  profile=profile, disk_format="qcow2")
    record = verify_image(cloud, "img", BuildInfo("b", "sha256:00", "x"), work_dir=tmp_path)
    assert record.to_dict()["verified"] is False
    assert record.reason == "no compute"
