"""clouds.yaml read as openstacksdk reads it, in the forms its documentation shows, and the
plan ``check-config`` prints for each (cloud, region)."""

from __future__ import annotations

import pytest
import yaml
from keystoneauth1 import identity as ksa_identity

from pipeline.cloud.session import auth_plugin
from pipeline.core.errors import ConfigError
from pipeline.settings.clouds import (
    cloud_from_entry,
    find_clouds_yaml,
    load_clouds,
    redact,
    select_clouds,
)
from pipeline.settings.config import load_pipeline, load_profiles
from pipeline.settings.plan import plan_rows, render_plan
from tests.conftest import cloud_entry, write_clouds_yaml

SECRET = "s3cret-pass"


def _select(config_tree, tmp_path, clouds, only=None, env=None):
    config = load_pipeline(config_tree / "pipeline.yaml")
    profiles = load_profiles(config.vendors_dir)
    path = write_clouds_yaml(tmp_path / "clouds.yaml", clouds)
    return select_clouds(config, profiles, load_clouds(path), only=only, env=env or {})


def _plan(cloud) -> dict[str, tuple[str, str]]:
    return {fact: (value, source) for fact, value, source in plan_rows(cloud)}


def test_clouds_get_their_profile_and_format(config_tree, tmp_path):
    selected = _select(config_tree, tmp_path, {
        "rax": cloud_entry("rackspace-like"), "hp": cloud_entry("hp-like"),
        "dh": cloud_entry("dreamhost-like"), "plain": {"auth": {}}})
    assert [(c.name, c.profile.name, c.disk_format) for c in selected] == [
        ("rax", "rackspace-like", "vhd"), ("hp", "hp-like", "qcow2"), ("dh", "dreamhost-like", "raw")]


def test_the_plan_says_where_a_raw_cloud_gets_the_gzip(config_tree, tmp_path):
    inflating = cloud_entry("dreamhost-like")
    inflating["imagefleet"]["overrides"] = {"image": {"raw_compressed_imports": ["web-download"]}}
    gz, plain = _select(config_tree, tmp_path, {"gz": inflating,
                                                 "plain": cloud_entry("dreamhost-like")})
    assert _plan(gz)["format"][0] == "raw (its gzip by web-download)"
    assert _plan(plain)["format"][0] == "raw"


def test_os_cloud_and_only_select(config_tree, tmp_path):
    clouds = {"a": cloud_entry("hp-like"), "b": cloud_entry("ovh-like")}
    assert [c.name for c in _select(config_tree, tmp_path, clouds, env={"OS_CLOUD": "b"})] == ["b"]
    assert [c.name for c in _select(config_tree, tmp_path, clouds, only=["a"])] == ["a"]


def test_unknown_profile_is_one_line(config_tree, tmp_path):
    with pytest.raises(ConfigError) as err:
        _select(config_tree, tmp_path, {"x": cloud_entry("nimbus-like")})
    line = str(err.value)
    assert "clouds.yaml: config: clouds.x.imagefleet.profile: unknown vendor profile " \
           "'nimbus-like'" in line


@pytest.mark.parametrize("fmt, words", [("vmdk", "unknown format 'vmdk'"),
                                        ("qcow2", "not accepted by this vendor")])
def test_bad_image_format_override(config_tree, tmp_path, fmt, words):
    with pytest.raises(ConfigError) as err:
        _select(config_tree, tmp_path, {"x": cloud_entry("rackspace-like", image_format=fmt)})
    assert "clouds.x.image_format" in str(err.value) and words in str(err.value)


def test_malformed_clouds_yaml(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text("clouds:\n  a: {auth: [\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_clouds(path)
    path.write_text("clouds: [a, b]\n")
    with pytest.raises(ConfigError, match="clouds: expected a mapping"):
        load_clouds(path)


def test_secure_yaml_split_is_merged_and_secrets_redacted(config_tree, tmp_path):
    """openstacksdk's documented split: the password in secure.yaml beside clouds.yaml."""
    entry = cloud_entry("hp-like")
    del entry["auth"]["password"]
    write_clouds_yaml(tmp_path / "clouds.yaml", {"hp": entry})
    (tmp_path / "secure.yaml").write_text(yaml.safe_dump(
        {"clouds": {"hp": {"auth": {"password": "from-secure"}}}}))
    cloud = load_clouds(tmp_path / "clouds.yaml")["hp"]
    assert cloud.auth["password"] == "from-secure"
    assert "from-secure" not in repr(cloud)
    assert redact(cloud.config)["auth"]["password"] == "***"
    assert auth_plugin(cloud) is not None
    (selected,) = _select(config_tree, tmp_path, {"hp": entry})    # rewrites clouds.yaml
    assert "from-secure" not in render_plan([selected])


def test_search_path_honours_os_client_config_file(tmp_path):
    path = write_clouds_yaml(tmp_path / "elsewhere.yaml", {"a": cloud_entry("hp-like")})
    assert find_clouds_yaml({"OS_CLIENT_CONFIG_FILE": str(path)}) == path


def test_profile_overrides_under_the_imagefleet_key(config_tree, tmp_path):
    overrides = {"network": {"routable_cidrs": ["127.100.0.0/16"]}}
    entry = cloud_entry("ovh-like")
    entry["imagefleet"]["overrides"] = overrides
    (cloud,) = _select(config_tree, tmp_path, {"ovh": entry})
    assert cloud.profile.network.routable_cidrs == ["127.100.0.0/16"]
    assert cloud.profile.network.external == "routable-port"  # the rest is kept
    assert "imagefleet.overrides" in _plan(cloud)["network"][1]
    entry["imagefleet"]["overrides"] = {"network": {"colour": 1}}
    with pytest.raises(ConfigError) as err:
        _select(config_tree, tmp_path, {"ovh": entry})
    assert "clouds.ovh.imagefleet.overrides.network.colour: unknown key" in str(err.value)


@pytest.mark.parametrize("entry, key, words", [
    ({"profile": "hp-like", "auth": {}}, "clouds.old.profile",
     "'hp-like' is not an openstacksdk vendor; an imagefleet profile now lives under its "
     "own key: 'imagefleet: {profile: hp-like}'"),
    ({"imagefleet_profile_overrides": {"network": {}}, "auth": {}},
     "clouds.old.imagefleet_profile_overrides",
     "'imagefleet_profile_overrides:' has moved: write it as 'imagefleet: {overrides: ...}'"),
    ({"imagefleet": {"profile": "hp-like", "colour": "red"}, "auth": {}},
     "clouds.old.imagefleet.colour", "unknown key"),
])
def test_todays_form_gets_one_line_saying_how_to_move_the_key(tmp_path, entry, key, words):
    path = write_clouds_yaml(tmp_path / "clouds.yaml", {"old": entry})
    with pytest.raises(ConfigError) as err:
        load_clouds(path)
    assert f"{key}: {words}" in str(err.value)
    assert "\n" not in str(err.value)


RACKSPACE_REGIONS = ["DFW", "HKG", "IAD", "ORD", "SYD", "LON"]


def test_vendor_profile_with_regions_derives_a_profile(config_tree, tmp_path):
    """``profile: rackspace`` (openstacksdk's vendor data) and no imagefleet profile: the
    auth URL, identity version and regions come from the vendor file, and so do the
    format (VHD), the upload (import task) and the network path (no floating IPs)."""
    entry = {"profile": "rackspace", "imagefleet": {},
             "auth": {"username": "me", "password": SECRET, "project_id": "123456"}}
    selected = _select(config_tree, tmp_path, {"rax": entry})
    assert [c.name for c in selected] == [f"rax/{r}" for r in RACKSPACE_REGIONS]
    cloud = selected[2]
    assert (cloud.config.name, cloud.config.region) == ("rax", "IAD")
    assert cloud.profile.name == "derived-rackspace"
    assert cloud.disk_format == "vhd"
    assert cloud.profile.image.upload == ["task"]
    assert cloud.profile.network.api == "none" and cloud.profile.network.floating_ip == "never"
    assert cloud.profile.image.properties == {"vm_mode": "hvm", "xenapi_use_agent": "False"}
    plan = _plan(cloud)
    assert plan["auth_url"] == ("https://identity.api.rackspacecloud.com/v2.0/",
                                "openstacksdk vendor rackspace")
    assert plan["identity"][0].startswith("v2.0")
    assert plan["format"] == ("vhd", "image_format: vhd (openstacksdk vendor rackspace)")
    assert plan["upload"] == ("task", "image_api_use_tasks: True (openstacksdk vendor rackspace)")
    assert plan["network"][1] == "has_network: False (openstacksdk vendor rackspace)"
    assert SECRET not in render_plan(selected)
    only = _select(config_tree, tmp_path, {"rax": entry}, only=["rax/ORD"])
    assert [c.name for c in only] == ["rax/ORD"]


def test_a_regions_list_is_one_target_per_region(config_tree, tmp_path):
    entry = cloud_entry("hp-like", regions=["east", "west"])
    del entry["region_name"]
    selected = _select(config_tree, tmp_path, {"hp": entry, "ovh": cloud_entry("ovh-like")})
    assert [c.name for c in selected] == ["hp/east", "hp/west", "ovh"]
    assert [c.config.region_name for c in selected] == ["east", "west", "RegionOne"]
    assert [c.name for c in _select(config_tree, tmp_path, {"hp": entry}, only=["hp"])] == [
        "hp/east", "hp/west"]
    with pytest.raises(ConfigError, match="cloud 'hp/north' is not defined"):
        _select(config_tree, tmp_path, {"hp": entry}, only=["hp/north"])


def test_a_vendor_that_says_too_little_needs_an_imagefleet_profile(config_tree, tmp_path):
    entry = {"profile": "dreamcompute", "imagefleet": {},
             "auth": {"username": "me", "password": SECRET, "project_name": "p"}}
    with pytest.raises(ConfigError) as err:
        _select(config_tree, tmp_path, {"dh": entry})
    assert ("clouds.dh.imagefleet.profile: no imagefleet profile named, and openstacksdk "
            "vendor 'dreamcompute' says nothing about floating IPs") in str(err.value)


@pytest.mark.parametrize("auth, extra, expect_auth, plugin, identity", [
    ({"auth_url": "http://k:5000/v2.0", "username": "u", "password": SECRET,
      "project_name": "demo"}, {"identity_api_version": "2.0"},
     {"project_name": "demo"}, ksa_identity.Password, ("v2.0 (password auth)", "auth_url")),
    ({"auth_url": "http://k:5000", "username": "u", "password": SECRET,
      "project_id": "p1", "domain_id": "d1"}, {"identity_api_version": 3},
     {"user_domain_id": "d1", "project_domain_id": "d1"}, ksa_identity.Password,
     ("v3 (password auth)", "identity_api_version (clouds.yaml)")),
    ({"auth_url": "http://k:5000/v3", "username": "u", "password": SECRET,
      "project_name": "demo", "domain_name": "Ops"}, {},
     {"user_domain_name": "Ops", "project_domain_name": "Ops"}, ksa_identity.Password,
     ("v3 (password auth)", "auth_url")),
    ({"auth_url": "http://k:5000/v3", "application_credential_id": "ac1",
      "application_credential_secret": SECRET}, {"auth_type": "v3applicationcredential"},
     {"application_credential_id": "ac1"}, ksa_identity.V3ApplicationCredential,
     ("v3 (v3applicationcredential auth)", "auth_url")),
])
def test_identity_forms(config_tree, tmp_path, auth, extra, expect_auth, plugin, identity):
    """v2.0, v3 with domain ids and names (openstacksdk copies ``domain_*`` into the user
    and project domains), and application credentials."""
    entry = {"imagefleet": {"profile": "hp-like"}, "region_name": "R", "auth": auth, **extra}
    (cloud,) = _select(config_tree, tmp_path, {"c": entry})
    resolved = cloud.config.auth
    assert {k: resolved[k] for k in expect_auth} == expect_auth
    assert "domain_id" not in resolved and "domain_name" not in resolved
    assert isinstance(auth_plugin(cloud.config), plugin)
    assert _plan(cloud)["identity"] == identity
    assert SECRET not in render_plan([cloud])


def test_the_envvars_cloud(config_tree, tmp_path, monkeypatch):
    """``OS_*`` variables make openstacksdk's ``envvars`` cloud; openstacksdk keys in the
    environment (``OS_IMAGE_FORMAT``...) are enough to derive a profile from."""
    for key, value in {"OS_AUTH_URL": "http://k:5000/v3", "OS_USERNAME": "u",
                       "OS_PASSWORD": SECRET, "OS_PROJECT_NAME": "demo",
                       "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
                       "OS_REGION_NAME": "Env1", "OS_IMAGE_FORMAT": "raw",
                       "OS_REQUIRES_FLOATING_IP": "true"}.items():
        monkeypatch.setenv(key, value)
    (cloud,) = _select(config_tree, tmp_path, {"hp": cloud_entry("hp-like")}, only=["envvars"])
    assert cloud.name == "envvars" and cloud.config.region == "Env1"
    assert cloud.config.path == "environment (OS_*)"
    assert cloud.disk_format == "raw"
    assert cloud.profile.network.floating_ip == "required"
    plan = _plan(cloud)
    assert plan["auth_url"] == ("http://k:5000/v3", "environment (OS_*)")
    assert plan["format"][1] == "image_format: raw (environment (OS_*))"
    assert isinstance(auth_plugin(cloud.config), ksa_identity.Password)
    # clouds.yaml's own clouds are still there and still chosen by default
    assert [c.name for c in _select(config_tree, tmp_path, {"hp": cloud_entry("hp-like")})] \
        == ["hp"]


def test_imagefleet_settings_keep_their_types():
    """openstacksdk stringifies ints in what it resolves; our section is read as written."""
    entry = {"imagefleet": {"profile": "hp-like", "overrides": {
        "network": {"check_port": 2222}, "image": {"active_timeout": 4.5}}},
        "region_name": "R", "auth": {"auth_url": "http://127.0.0.1:1/v3", "username": "u",
                                     "password": "p", "project_name": "p",
                                     "user_domain_name": "Default",
                                     "project_domain_name": "Default"}}
    cloud = cloud_from_entry("typed", entry)
    assert cloud.settings["overrides"]["network"]["check_port"] == 2222
    assert cloud.settings["overrides"]["image"]["active_timeout"] == 4.5


def test_the_entrys_networks_name_the_boot_network_and_the_pool(config_tree, tmp_path):
    """openstacksdk's ``networks:`` list: ``default_interface`` is the network to boot on,
    ``nat_source`` where floating IPs come from; the entry's overrides still win."""
    networks = [{"name": "backend", "default_interface": True},
                {"name": "public", "nat_source": True}]
    overridden = cloud_entry("auro-like", networks=networks)
    overridden["imagefleet"]["overrides"] = {"network": {"network": "private"}}
    [auro, other] = _select(config_tree, tmp_path, {
        "auro": cloud_entry("auro-like", networks=networks), "other": overridden})
    assert (auro.profile.network.network, auro.profile.network.floating_network) == (
        "backend", "public")
    assert _plan(auro)["network"][1].startswith("clouds.auro.networks over ")
    assert other.profile.network.network == "private"
