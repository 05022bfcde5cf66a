"""``image.source`` and ``verify.check``: a prebuilt image instead of a DIB build."""

from __future__ import annotations

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.image.build import plan_build
from pipeline.settings.config import load_pipeline


def write(config_tree, image_extra=None, verify=None):
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"].update(image_extra or {})
    if verify is not None:
        data["verify"] = verify
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def prebuilt(config_tree):
    path = config_tree / "prebuilt.qcow2"
    path.write_bytes(b"not really qcow2, but plan_build only reads it")
    return path


def test_default_is_a_dib_build_read_by_build_id(config_tree):
    config = load_pipeline(write(config_tree))
    assert config.source is None and config.verify_check == "build-id"


def test_source_relative_to_pipeline_yaml_and_format_from_suffix(config_tree, prebuilt):
    config = load_pipeline(write(config_tree, {"source": "prebuilt.qcow2"}))
    assert config.source == prebuilt and config.source_format == "qcow2"
    assert config.verify_check == "ssh-banner"


@pytest.mark.parametrize("image_extra, verify, key, words", [
    ({"source": "missing.raw"}, None, "image.source", "not found"),
    ({"source": "prebuilt.qcow2", "source_format": "vmdk"}, None, "image.source_format",
     "not one of"),
    ({"source": "prebuilt.bin"}, None, "image.source_format", "cannot tell the format"),
    ({"source": "prebuilt.qcow2"}, {"check": "build-id"}, "verify.check", "no build id"),
    ({}, {"check": "ping"}, "verify.check", "not one of"),
    ({}, {"depth": 2}, "verify.depth", "unknown key"),
])
def test_bad_source_settings_are_one_line(config_tree, prebuilt, image_extra, verify, key, words):
    (config_tree / "prebuilt.bin").write_bytes(b"x")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(write(config_tree, image_extra, verify))
    message = str(caught.value)
    assert key in message and words in message and "\n" not in message


def test_the_digest_follows_the_file_content(config_tree, prebuilt):
    path = write(config_tree, {"source": "prebuilt.qcow2"})
    first = plan_build(load_pipeline(path))
    assert plan_build(load_pipeline(path)).digest == first.digest
    assert first.source == prebuilt
    prebuilt.write_bytes(b"another image")
    assert plan_build(load_pipeline(path)).digest != first.digest
