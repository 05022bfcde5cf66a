"""The command line: bad config gives one clear line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, cloud_entry, write_clouds_yaml


def imagefleet(*args: str, cwd: Path, env_extra: dict | None = None):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(REPO),
           **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def check_config(config_tree: Path, clouds: Path, *extra: str):
    return imagefleet("check-config", "--config", str(config_tree / "pipeline.yaml"),
                      "--clouds-yaml", str(clouds), *extra, cwd=config_tree.parent)


def one_error_line(result) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("imagefleet: ")
    return lines[0]


def test_good_config_lists_clouds_and_formats(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {
        "rax": cloud_entry("rackspace-like"), "hp": cloud_entry("hp-like")})
    result = check_config(config_tree, clouds)
    assert result.returncode == 0, result.stderr
    assert "rax" in result.stdout and "vhd" in result.stdout
    assert "formats to convert: qcow2, vhd" in result.stdout
    assert "s3cret-pass" not in result.stdout + result.stderr


def test_todays_clouds_yaml_form_is_one_line_saying_how_to_move_it(config_tree, tmp_path):
    entry = cloud_entry("hp-like")
    entry["profile"] = entry.pop("imagefleet")["profile"]
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"hp": entry})
    result = check_config(config_tree, clouds)
    line = one_error_line(result)
    assert line == (f"imagefleet: {clouds}: config: clouds.hp.profile: 'hp-like' is not an "
                    "openstacksdk vendor; an imagefleet profile now lives under its own key: "
                    "'imagefleet: {profile: hp-like}'")
    assert result.returncode == 2


def test_malformed_clouds_yaml(config_tree, tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  hp:\n    profile: hp-like\n   auth: {}\n")
    line = one_error_line(check_config(config_tree, clouds))
    assert line.startswith(f"imagefleet: {clouds}: config: malformed YAML: line 4")


def test_unknown_profile(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"x": cloud_entry("nimbus-like")})
    line = one_error_line(check_config(config_tree, clouds))
    assert "clouds.x.imagefleet.profile: unknown vendor profile 'nimbus-like'" in line


def test_unknown_format(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml",
                               {"x": cloud_entry("hp-like", image_format="vmdk")})
    line = one_error_line(check_config(config_tree, clouds))
    assert "clouds.x.image_format: unknown format 'vmdk'" in line


@pytest.mark.parametrize("command", ["check-config", "build"])
def test_missing_element(config_tree, tmp_path, command):
    path = config_tree / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"]["elements"].append("no-such-element")
    path.write_text(yaml.safe_dump(data))
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"hp": cloud_entry("hp-like")})
    result = imagefleet(command, "--config", str(path), "--clouds-yaml", str(clouds),
                        *(["--work-dir", str(tmp_path / "w")] if command == "build" else []),
                        cwd=tmp_path)
    line = one_error_line(result)
    assert "element 'no-such-element' not found" in line
    assert result.returncode == 2


def test_unknown_cloud_on_command_line(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"hp": cloud_entry("hp-like")})
    line = one_error_line(check_config(config_tree, clouds, "--cloud", "nope"))
    assert "clouds.nope: cloud 'nope' is not defined (defined: hp)" in line


def test_verbose_adds_detail(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {"x": cloud_entry("nimbus-like")})
    result = check_config(config_tree, clouds, "-vv")
    assert result.returncode == 2
    assert "Traceback" in result.stderr  # -vv shows where it came from
