"""Nights against a package mirror imagefleet does not own, with the run's own clock.

A flat apt repository on loopback (``tests/aptmirror.py``) serves two
packages; each "night" the tiny image is made from what the mirror serves
(real apt-get, dpkg --root) and published with ``imagefleet run --now``.  The
second night, 24 h later with nothing changed, rebuilds by age and uploads
nothing; the third, after the mirror bumped one package, uploads and
test-boots a new image whose report names the package with both versions.
"""

from __future__ import annotations

import json
import time

import pytest

from pipeline.cloud.connection import Connection
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from tests.aptmirror import AptMirror, image_from_mirror
from tests.pipeline_run import (
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    our_images,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLOUD = "ovh-like"
PACKAGES = ["imagefleet-probe", "imagefleet-steady"]
NIGHTS = ["2026-11-28T02:00:00Z", "2026-11-29T02:00:00Z", "2026-11-30T02:00:00Z"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, [CLOUD])


class Nights:
    def __init__(self, root, cloud, mirror: AptMirror, url: str):
        self.root, self.cloud, self.mirror, self.url = root, cloud, mirror, url
        self.source = root / "night.raw"
        self.pipeline = Pipeline(write_pipeline_yaml(root, self.source, name="nightly"),
                                 clouds_yaml_for(cloud, [CLOUD], root / "clouds.yaml"),
                                 root / "work")

    def make_image(self) -> None:
        """What tonight's build gets from the mirror."""
        image_from_mirror(tiny_source(), self.url, PACKAGES, self.source)

    def run(self, now: str, *args: str) -> tuple[dict, dict[str, int]]:
        started = time.time()
        result = self.pipeline.run("--now", now, *args, date=None)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return self.pipeline.report(), self.pipeline.tasks_run(since=started)

    def images(self) -> list[dict]:
        """Our images as Glance shows them to the project: name, id and properties."""
        ids = {i["id"] for i in our_images(self.cloud, CLOUD, name="nightly")}
        config = load_pipeline(self.pipeline.config)
        (target,) = select_clouds(config, load_profiles(config.vendors_dir),
                                  load_clouds(str(self.pipeline.clouds_yaml)))
        return [{"id": i.id, "name": i.name, **i.properties}
                for i in Connection(target).glance.list_all() if i.id in ids]


@pytest.fixture(scope="module")
def nights(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    mirror = AptMirror(root / "mirror")
    mirror.add("imagefleet-probe", "1.0-1")
    mirror.add("imagefleet-steady", "2.0")
    with mirror.serving() as url:
        n = Nights(root, cloud, mirror, url)
        n.make_image()
        n.first, _ = n.run(NIGHTS[0])
        yield n


def _row(report: dict) -> dict:
    (row,) = report["clouds"]
    return row


def test_first_night_publishes_the_manifest_and_its_digest(nights):
    row = _row(nights.first)
    assert row["status"] == "done" and row["bytes"] > 0 and row["verify"] == "passed"
    build = nights.first["build_id"]
    work = nights.pipeline.work
    manifest = json.loads((work / "builds" / build / "manifest.json").read_text())
    assert manifest["packages"] == {"imagefleet-probe": "1.0-1", "imagefleet-steady": "2.0"}
    assert manifest["kernels"]                       # the tiny image's kernel, read from it
    record = json.loads((work / "builds" / build / "build.json").read_text())
    (image,) = nights.images()
    assert image["imagefleet_content"] == record["content"]
    assert image["imagefleet_build"] == build


def test_second_night_unchanged_rebuilds_by_age_and_uploads_nothing(nights):
    # Same night, an hour later: the build is young, everything is complete.
    _, ran = nights.run("2026-11-28T03:00:00Z")
    assert ran == {}
    nights.make_image()                            # the mirror serves the same packages
    report, ran = nights.run(NIGHTS[1])
    assert report["build_id"] != nights.first["build_id"]
    assert ran.get("BuildBaseImage") == 1 and ran.get("UploadImage") == 1
    row = _row(report)
    assert row["status"] == "done" and row["bytes"] == 0 and row["skipped_upload"]
    assert row["unchanged_since"] == nights.first["build_id"]
    assert row["verify"] == "unchanged"
    assert len(nights.images()) == 1               # no second image in the cloud
    assert f"unchanged since build {nights.first['build_id']}" in (
        nights.pipeline.work / "reports" / "latest" / "report.html").read_text()
    # --rebuild forces a build the age would not
    forced, ran = nights.run("2026-11-29T04:00:00Z", "--rebuild")
    assert forced["build_id"] not in (report["build_id"], nights.first["build_id"])
    assert ran.get("BuildBaseImage") == 1 and _row(forced)["bytes"] == 0


def test_a_bumped_package_is_published_with_its_changelog(nights):
    nights.mirror.add("imagefleet-probe", "1.1-1")
    nights.make_image()
    report, ran = nights.run(NIGHTS[2])
    row = _row(report)
    assert ran.get("UploadImage") == 1 and ran.get("VerifyImage") == 1
    assert row["status"] == "done" and row["bytes"] > 0 and row["verify"] == "passed"
    assert row["changed_since"] == nights.first["build_id"]
    assert row["changes"] == ["↑ imagefleet-probe 1.0-1 → 1.1-1"]
    html = (nights.pipeline.work / "reports" / "latest" / "report.html").read_text()
    assert "imagefleet-probe 1.0-1 → 1.1-1" in html
    builds = {i["imagefleet_build"] for i in nights.images()}
    assert builds == {nights.first["build_id"], report["build_id"]}
