"""check-config refuses the cloud kernel for a profile whose hypervisor it cannot drive."""

from __future__ import annotations

import yaml

from tests.conftest import REPO, cloud_entry, write_clouds_yaml
from tests.integration.test_cli_errors import imagefleet, one_error_line


def check_config(config_tree, clouds):
    # this tree's code, also when another checkout is the venv's editable install
    return imagefleet("check-config", "--config", str(config_tree / "pipeline.yaml"),
                      "--clouds-yaml", str(clouds), cwd=config_tree.parent,
                      env_extra={"PYTHONPATH": str(REPO)})


E1000_ONLY = {"compute": {"cloud_kernel": False}}   # imagefleet: {overrides: ...}


def test_cloud_kernel_refused_for_an_e1000_only_cloud(config_tree, tmp_path):
    clouds = write_clouds_yaml(tmp_path / "clouds.yaml", {
        "hp": cloud_entry("hp-like"), "old": overridden("auro-like", E1000_ONLY)})
    line = one_error_line(check_config(config_tree, clouds))
    assert "image.environment" in line and "compute.cloud_kernel: false" in line
    assert "linux-image-amd64" in line

    pipeline = config_tree / "pipeline.yaml"
    data = yaml.safe_load(pipeline.read_text())
    data["image"]["environment"].pop("DIB_IMAGEFLEET_KERNEL")     # the generic kernel
    pipeline.write_text(yaml.safe_dump(data))
    assert check_config(config_tree, clouds).returncode == 0


def overridden(profile: str, overrides: dict) -> dict:
    entry = cloud_entry(profile)
    entry["imagefleet"]["overrides"] = overrides
    return entry
