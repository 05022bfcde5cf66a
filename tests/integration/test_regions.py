"""One cloud, two regions: the clouds.yaml the local cloud writes serves the stock
``openstack`` CLI and ``imagefleet run`` unchanged, and the run publishes and verifies
in both regions (one report row each), with the tiny image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localcloud.personality import PERSONALITY_DIR
from tests.pipeline_run import Pipeline, local_cloud, tiny_source, write_pipeline_yaml

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPENSTACK_CLI = Path(sys.executable).parent / "openstack"
REGIONS = ["GRA7", "BHS5"]


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    """The ovh-like personality with two regions, each with services and data of its own."""
    data = yaml.safe_load((PERSONALITY_DIR / "ovh-like.yaml").read_text())
    data.update(regions=REGIONS, region_endpoints="separate")
    path = tmp_path_factory.mktemp("personality") / "ovh-like.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    yield from local_cloud(tmp_path_factory, [str(path)])


def openstack(clouds_yaml: Path, *args: str) -> str:
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}
    env.pop("OS_CLOUD", None)
    done = subprocess.run([str(OPENSTACK_CLI), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def image_names(clouds_yaml: Path, region: str) -> list[str]:
    out = openstack(clouds_yaml, "--os-cloud", "ovh-like", "--os-region-name", region,
                    "image", "list", "-f", "json")
    return [image["Name"] for image in json.loads(out)]


def test_one_clouds_yaml_for_the_openstack_cli_and_imagefleet_in_two_regions(two_regions,
                                                                               tmp_path):
    clouds_yaml = two_regions.clouds_yaml
    written = clouds_yaml.read_text()
    entry = yaml.safe_load(written)["clouds"]["ovh-like"]
    assert entry["regions"] == REGIONS and entry["imagefleet"]["profile"] == "ovh-like"
    # the stock CLI reads the file as it is, in each region
    assert image_names(clouds_yaml, "GRA7") == [] and image_names(clouds_yaml, "BHS5") == []

    pipeline = Pipeline(write_pipeline_yaml(tmp_path, tiny_source()), clouds_yaml,
                        tmp_path / "work")
    plan = pipeline.run("--discover", command="check-config")
    assert plan.returncode == 0, plan.stderr
    assert "ovh-like/GRA7: cloud ovh-like, region GRA7" in plan.stdout
    assert "ovh-like/BHS5: cloud ovh-like, region BHS5" in plan.stdout
    for target in ("ovh-like/GRA7", "ovh-like/BHS5"):       # --discover asked each region
        assert f"{target}: image API v2" in plan.stdout, plan.stdout

    result = pipeline.run("--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert clouds_yaml.read_text() == written                 # used unchanged
    report = pipeline.report()
    rows = {c["cloud"]: c for c in report["clouds"]}
    assert sorted(rows) == ["ovh-like/BHS5", "ovh-like/GRA7"]
    assert all(c["status"] == "done" for c in rows.values()), rows
    assert all(c["stages"]["verify"] == "done" for c in rows.values()), rows
    assert report["ok"]

    # each region has the image in its own Glance, as the CLI and the local cloud see it
    for region, served_as in (("GRA7", "ovh-like"), ("BHS5", "ovh-like@BHS5")):
        names = image_names(clouds_yaml, region)
        assert len(names) == 1 and names[0].startswith("tinyfleet"), (region, names)
        assert set(two_regions.leftovers(served_as)) == {"images"}    # test boot cleaned up
    assert sorted((tmp_path / "work" / "verify").glob("*/*.json")) and all(
        "@" in p.name for p in (tmp_path / "work" / "verify").glob("*/*.json"))

    # --cloud NAME/REGION picks one region: a rerun there has nothing left to do
    again = pipeline.run("--cloud", "ovh-like/BHS5", date="2026-11-24")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [c["cloud"] for c in pipeline.report()["clouds"]] == ["ovh-like/BHS5"]
