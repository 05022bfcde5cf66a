"""Boot from volume and the cloud-only check: the pure decisions, one table each."""

from __future__ import annotations

import pytest
import yaml

from pipeline.cloud import volumes
from pipeline.cloud.verify import CHECKS
from pipeline.core.errors import ConfigError
from pipeline.run.report import check_note
from pipeline.settings.config import load_pipeline, load_schema

GIB = 1 << 30


def flavor(name, ram, disk, disabled=False):
    return {"id": name, "name": name, "ram": ram, "disk": disk,
            "OS-FLV-DISABLED:disabled": disabled}


# the shapes: the talks' clouds have root disks; a diskless-flavor cloud (Nova's
# zero-disk rule) has none; a mixed cloud has both.
DISKED = [flavor("m1.tiny", 512, 1), flavor("m1.small", 2048, 20)]
DISKLESS = [flavor("s3.small", 1024, 0), flavor("s3.large", 4096, 0)]
MIXED = [flavor("s3.small", 1024, 0), flavor("m1.small", 2048, 20)]
# the only flavor with a disk lacks RAM / is disabled: every usable one is diskless
SMALL_DISKED = [flavor("m1.nano", 128, 1), flavor("s3.small", 1024, 0)]
DISABLED_DISKED = [flavor("m1.small", 2048, 20, disabled=True), flavor("s3.small", 1024, 0)]


@pytest.mark.parametrize("setting, flavors, name, expected", [
    ("auto", DISKED, None, False),                # Rackspace-, HP-, OVH-like...
    ("auto", DISKLESS, None, True),               # every flavor zero disk: Nova's 403 else
    ("auto", MIXED, None, False),                 # a disked flavor fits: boot the image
    ("auto", SMALL_DISKED, None, True),           # the disked one is too small
    ("auto", DISABLED_DISKED, None, True),
    ("auto", MIXED, "s3.small", True),            # the profile names a diskless flavor
    ("auto", MIXED, "m1.small", False),
    ("auto", [], None, False),                    # no flavor: choose_flavor says why
    ("always", DISKED, None, True),
    ("never", DISKLESS, None, False),             # and Nova will refuse: its error says so
])
def test_needs_volume(setting, flavors, name, expected):
    assert volumes.needs_volume(setting, flavors, 512, name) is expected


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="not one of auto, always, never"):
        volumes.needs_volume("sometimes", DISKED)


@pytest.mark.parametrize("virtual, stored, min_disk, expected", [
    (24 << 20, 24 << 20, 0, 1),                   # the tiny image: at least 1 GiB
    (2 * GIB, 400 << 20, 0, 2),                   # a 2 GiB qcow2 stored in 400 MiB
    (2 * GIB + 1, None, None, 3),                 # rounded up
    (None, 300 << 20, 2, 2),                      # Glance v1: no virtual size, min_disk
    (2 * GIB, 2 * GIB, 5, 5),                     # min_disk wins (Cinder's 400 otherwise)
    (None, None, None, 1),
    (None, 3 * GIB + 5, 0, 4),                    # a raw upload bigger than its min_disk
])
def test_volume_size_gb(virtual, stored, min_disk, expected):
    assert volumes.volume_size_gb(virtual, stored, min_disk) == expected


def test_the_root_mapping_boots_the_volume_and_keeps_it_for_our_cleanup():
    assert volumes.root_mapping("v-1") == [{"boot_index": 0, "uuid": "v-1",
                                            "source_type": "volume",
                                            "destination_type": "volume",
                                            "delete_on_termination": False}]


def test_the_schema_and_the_verify_module_name_the_same_checks():
    schema = load_schema("pipeline")["properties"]["verify"]["properties"]["check"]
    assert tuple(schema["enum"]) == CHECKS
    vendor = load_schema("vendor")["properties"]["compute"]["properties"]
    assert tuple(vendor["boot_from_volume"]["enum"]) == volumes.SETTINGS


def write(config_tree, verify=None, source=None):
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    if verify:
        data["verify"] = {"check": verify}
    if source:
        (config_tree / "pre.raw").write_bytes(b"x")
        data["image"]["source"] = "pre.raw"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("check, source, local_login", [
    (None, False, True), ("build-id", False, True), ("ssh-banner", False, False),
    ("cloud-only", False, True),      # the cloud is not reached; the local boot still logs in
    (None, True, False), ("ssh-banner", True, False), ("cloud-only", True, False),
])
def test_which_check_runs_and_whether_the_local_boot_logs_in(config_tree, check, source,
                                                             local_login):
    config = load_pipeline(write(config_tree, check, source))
    assert config.verify_check == (check or ("ssh-banner" if source else "build-id"))
    assert config.local_login is local_login


def test_a_prebuilt_image_with_build_id_names_both_other_checks(config_tree):
    with pytest.raises(ConfigError, match="ssh-banner or cloud-only"):
        load_pipeline(write(config_tree, "build-id", source=True))


@pytest.mark.parametrize("row, note", [
    ({"verify_check": "build-id"}, ""),
    ({"verify_check": "cloud-only"}, "cloud-only: ACTIVE, not reached from here"),
    ({"verify_check": "ssh-banner", "boot_volume_gb": 2}, "booted from a 2 GiB volume"),
    ({"verify_check": "cloud-only", "boot_volume_gb": 1},
     "cloud-only: ACTIVE, not reached from here; booted from a 1 GiB volume"),
])
def test_the_report_says_which_check_ran(row, note):
    assert check_note(row) == note


@pytest.mark.parametrize("overrides, value, source", [
    (None, "image, or a volume if every flavor has zero disk", "imagefleet profile ovh-like"),
    ({"compute": {"boot_from_volume": "always"}}, "from a volume made from the image",
     "clouds.x.imagefleet.overrides over imagefleet profile ovh-like"),
])
def test_check_config_says_how_the_test_boot_gets_its_disk(config_tree, tmp_path, overrides,
                                                           value, source):
    from pipeline.settings.clouds import load_clouds, select_clouds
    from pipeline.settings.config import load_profiles
    from pipeline.settings.plan import plan_rows
    from tests.conftest import cloud_entry, write_clouds_yaml
    entry = cloud_entry("ovh-like")
    if overrides:
        entry["imagefleet"]["overrides"] = overrides
    config = load_pipeline(config_tree / "pipeline.yaml")
    (cloud,) = select_clouds(config, load_profiles(config.vendors_dir),
                             load_clouds(write_clouds_yaml(tmp_path / "c.yaml", {"x": entry})))
    assert ("boot", value, source) in plan_rows(cloud)


def test_the_html_row_names_the_check_that_ran():
    from pipeline.run.report import cloud_row, make_report, render_html
    verify = {"check": "cloud-only", "volume_gb": 2, "seconds_to_active": 3.0}
    row = cloud_row("zd", "ovh-like", "qcow2", build={}, convert={}, local_boot={},
                    upload={"image_id": "i"}, verify=verify, error=None, failed_stage=None)
    page = render_html(make_report("r", "b", [row]))
    assert "check cloud-only (cloud-only: ACTIVE, not reached from here; booted from a " \
           "2 GiB volume)" in page
