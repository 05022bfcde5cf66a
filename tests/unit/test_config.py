"""Configuration: every vendor file validates; bad input gives one precise error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.settings.config import load_pipeline, load_profile, load_profiles
from pipeline.settings.profile import ImageSection, MetadataSection
from tests.conftest import REPO

VENDOR_FILES = sorted((REPO / "config" / "vendors").glob("*.yaml"))


@pytest.mark.parametrize("path", VENDOR_FILES, ids=lambda p: p.stem)
def test_every_vendor_profile_validates(path: Path):
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.disk_formats


def test_the_six_vendor_shapes_are_present():
    names = set(load_profiles(REPO / "config" / "vendors"))
    assert {"rackspace-like", "hp-like", "dreamhost-like", "vexxhost-like", "ovh-like",
            "auro-like"} <= names


@pytest.mark.parametrize("mutate, key, words", [
    (lambda d: d["image"].update(disk_formats=["vmdk"]), "image.disk_formats.0", "not one of"),
    (lambda d: d["network"].update(colour="blue"), "network.colour", "unknown key"),
    (lambda d: d.pop("network"), "network", "required key is missing"),
    (lambda d: d["image"].update(upload=["ftp"]), "image.upload.0", "not one of"),
    (lambda d: d["network"].update(check_port=70000), "network.check_port", "70000"),
])
def test_bad_vendor_profile_names_file_and_key(tmp_path, mutate, key, words):
    data = yaml.safe_load((REPO / "config/vendors/hp-like.yaml").read_text())
    mutate(data)
    path = tmp_path / "hp-like.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    line = str(err.value)
    assert line.startswith(f"{path}: config: {key}:"), line
    assert words in line
    assert "\n" not in line


def test_profile_name_must_match_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text((REPO / "config/vendors/hp-like.yaml").read_text())
    with pytest.raises(ConfigError, match="does not match the file name"):
        load_profile(path)


def test_malformed_yaml_reports_line_and_column(config_tree):
    path = config_tree / "pipeline.yaml"
    path.write_text("image:\n  name: x\n   release: [bookworm\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}: config: malformed YAML: line ")


def test_unknown_pipeline_key(config_tree):
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"]["colour"] = "blue"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"image\.colour: unknown key"):
        load_pipeline(path)


def test_pipeline_defaults(config_tree):
    config = load_pipeline(config_tree / "pipeline.yaml")
    assert config.image_name == "imagefleet-debian"
    assert "imagefleet-base" in config.elements
    assert config.vendors_dir == (config_tree / "vendors").resolve()


@pytest.mark.parametrize("in_file, env, expected", [
    (None, None, "auto"), ("tcg", None, "tcg"), ("kvm", "tcg", "tcg"), (None, "kvm", "kvm"),
])
def test_accel_setting_file_then_environment(config_tree, monkeypatch, in_file, env, expected):
    assert load_pipeline(_accel_config(config_tree, monkeypatch, in_file, env)).accel == expected


@pytest.mark.parametrize("in_file, env, key", [("fast", None, "accel"),
                                               (None, "hvf", "IMAGEFLEET_ACCEL")])
def test_bad_accel_setting_is_one_line_naming_its_source(config_tree, monkeypatch, in_file,
                                                         env, key):
    with pytest.raises(ConfigError, match=key):
        load_pipeline(_accel_config(config_tree, monkeypatch, in_file, env))


def _accel_config(config_tree, monkeypatch, in_file, env):
    """pipeline.yaml with ``accel: in_file`` (if any) and ``$IMAGEFLEET_ACCEL`` set or unset."""
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    if in_file:
        data["accel"] = in_file
    path.write_text(yaml.safe_dump(data))
    if env:
        monkeypatch.setenv("IMAGEFLEET_ACCEL", env)
    else:
        monkeypatch.delenv("IMAGEFLEET_ACCEL", raising=False)
    return path


def test_profile_sections_carry_the_defaults():
    """A key the YAML leaves out reads as its one default; the schema documents the same."""
    from dataclasses import MISSING, fields

    from pipeline.settings.config import load_schema
    from pipeline.settings.profile import (
        ComputeSection,
        ImageSection,
        NetworkSection,
        Profile,
        RetentionSection,
    )
    profile = Profile(name="bare", path="bare.yaml", data={
        "name": "bare", "image": {"disk_formats": ["qcow2"]},
        "network": {"api": "neutron", "external": "floating"}})
    assert profile.image.container_format == "bare" and profile.image.upload == ["put"]
    assert profile.compute.api == "nova" and profile.compute.config_drive is False
    assert profile.network.floating_ip == "auto" and profile.network.check_port == 22
    assert profile.retention.keep is None
    sections = {"image": ImageSection, "compute": ComputeSection, "network": NetworkSection,
                "retention": RetentionSection}
    schema = load_schema("vendor")["properties"]
    for name, section in sections.items():
        defaults = {f.name: f.default for f in fields(section) if f.default is not MISSING}
        props = schema[name]["properties"]
        assert {f.name for f in fields(section)} == set(props), name
        for key, spec in props.items():
            if "default" in spec:
                assert defaults[key] == spec["default"], f"{name}.{key}"


def test_config_drive_only_where_the_profile_says_the_cloud_needs_one():
    from pipeline.settings.profile import Profile
    data = {"name": "x", "image": {"disk_formats": ["raw"]}, "compute": {"config_drive": True},
            "network": {"api": "none", "external": "public"}}
    assert Profile(name="x", path="x.yaml", data=data).compute.config_drive is True
    shipped = load_profiles(REPO / "config" / "vendors")
    # rackspace-like: no metadata service, static networking from the drive
    # (docs/vendor-behaviour.md "Metadata service"); the others boot as a user would.
    assert {n for n, p in shipped.items() if p.compute.config_drive} == {"rackspace-like"}


def _with_metadata(config_tree, metadata):
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"]["metadata"] = metadata
    path.write_text(yaml.safe_dump(data))
    return path


def test_image_metadata_keeps_types_and_the_profile_overrides_it(config_tree):
    assert load_pipeline(config_tree / "pipeline.yaml").metadata == MetadataSection()  # today's
    path = _with_metadata(config_tree, {"min_disk": 2, "protected": True, "tags": ["lts"],
                                        "os_distro": "debian", "hw_qemu_guest_agent": True})
    base = load_pipeline(path).metadata
    assert (base.min_disk, base.protected, base.tags) == (2, True, ("lts",))
    assert base.properties == {"os_distro": "debian", "hw_qemu_guest_agent": "true"}
    vendor = ImageSection(disk_formats=["qcow2"], properties={"min_ram": "512", "x": "y"},
                          metadata={"min_disk": 4, "os_distro": "ubuntu"})
    merged = vendor.image_metadata(base)
    assert (merged.min_disk, merged.min_ram, merged.protected) == (4, 512, True)
    assert merged.properties["os_distro"] == "ubuntu" and vendor.string_properties == {"x": "y"}


@pytest.mark.parametrize("metadata, key", [
    ({"min_disk": "2"}, "image.metadata.min_disk"), ({"protected": "yes"}, "image.metadata.protected"),
    ({"tags": "lts"}, "image.metadata.tags"), ({"colour": "blue"}, "image.metadata.colour")])
def test_image_metadata_schema(config_tree, metadata, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_pipeline(_with_metadata(config_tree, metadata))
