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
import shutil
import subprocess
import time

import pytest
import yaml

from pipeline.cloud.connection import Connection
from pipeline.run import metrics
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from tests.aptmirror import AptMirror, image_from_mirror
from tests.browser import ARTIFACTS, check_report_in_browser, chromium_binary
from tests.pipeline_run import (
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLOUD = "ovh-like"
PACKAGES = ["imagefleet-probe", "imagefleet-steady"]
STABLE = "Nightly Debian"
NIGHTS = ["2026-11-28T02:00:00Z", "2026-11-29T02:00:00Z", "2026-11-30T02:00:00Z"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, [CLOUD])


class Nights:
    def __init__(self, root, cloud, mirror: AptMirror, url: str):
        self.root, self.cloud, self.mirror, self.url = root, cloud, mirror, url
        self.source = root / "night.raw"
        config = write_pipeline_yaml(root, self.source, name="nightly", keep=5)
        data = yaml.safe_load(config.read_text())
        data["image"]["stable_name"] = STABLE
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        self.pipeline = Pipeline(config, clouds_yaml_for(cloud, [CLOUD], root / "clouds.yaml"),
                                 root / "work")

    def make_image(self) -> None:
        """What tonight's build gets from the mirror."""
        image_from_mirror(tiny_source(), self.url, PACKAGES, self.source)

    def run(self, now: str, *args: str) -> tuple[dict, dict[str, int]]:
        started = time.time()
        result = self.pipeline.run("--now", now, *args, date=None)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return self.pipeline.report(), self.pipeline.tasks_run(since=started)

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return self.pipeline.run("--cloud", CLOUD, *args, command=command, date=None)

    def holder(self) -> dict:
        """The one image holding the stable name (by name and by mark)."""
        (holder,) = [i for i in self.images() if i["name"] == STABLE]
        assert holder.get("imagefleet_stable") == STABLE
        return holder

    def images(self) -> list[dict]:
        """Our images as Glance shows them to the project: name, id and properties."""
        ids = {i["id"] for i in self.cloud.resources(CLOUD)["images"]}
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
    assert image["name"] == STABLE and image["imagefleet_stable"] == STABLE


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
    assert nights.holder()["imagefleet_build"] == nights.first["build_id"]
    assert f"unchanged since build {nights.first['build_id']}" in (
        nights.pipeline.work / "reports" / "latest" / "report.html").read_text()


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
    names = {i["imagefleet_build"]: i["name"] for i in nights.images()}
    first, third = nights.first["build_id"], report["build_id"]
    assert names == {first: f"nightly-{first}", third: STABLE}   # the name moved
    nights.third = report


def test_the_stable_name_moves_only_after_a_passing_test_boot(nights):
    nights.mirror.add("imagefleet-steady", "2.1")
    nights.make_image()
    # Every server create fails: the new image is uploaded, its test boot cannot pass.
    nights.cloud.add_fault(CLOUD, kind="status", status=500, service="compute",
                           method="POST", times=None, message="no valid host")
    try:
        result = nights.pipeline.run("--now", "2026-12-01T02:00:00Z", date=None)
    finally:
        nights.cloud.clear_faults(CLOUD)
    assert result.returncode == 1 and "ovh-like: boot: Nova returned 500" in result.stderr, \
        result.stderr[-2000:]
    failed = nights.pipeline.report()["build_id"]
    assert nights.holder()["imagefleet_build"] == nights.third["build_id"]
    assert any(i["imagefleet_build"] == failed and i["name"] == f"nightly-{failed}"
               for i in nights.images())
    # and an operator cannot promote it either
    promoted = nights.cli("promote", "--build", failed)
    assert promoted.returncode == 1 and "has not passed a test boot" in promoted.stderr
    nights.failed = failed


def test_promote_rolls_back_and_delete_spares_the_holder(nights):
    first, third = nights.first["build_id"], nights.third["build_id"]
    listed = nights.cli("images", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["build"]: r for r in json.loads(listed.stdout)[CLOUD]}
    assert set(rows) == {first, third, nights.failed}
    assert rows[third]["stable"] == STABLE and rows[third]["verified"]
    assert not rows[nights.failed]["verified"]

    promoted = nights.cli("promote", "--build", first)
    assert promoted.returncode == 0, promoted.stderr
    assert nights.holder()["imagefleet_build"] == first
    assert {i["imagefleet_build"]: i["name"] for i in nights.images()}[third] == \
        f"nightly-{third}"

    refused = nights.cli("delete", "--build", first)
    assert refused.returncode == 1 and "holds the stable name" in refused.stderr
    deleted = nights.cli("delete", "--build", third)
    assert deleted.returncode == 0, deleted.stderr
    assert {i["imagefleet_build"] for i in nights.images()} == {first, nights.failed}
    table = nights.cli("images")
    assert f"(stable: {STABLE})" in table.stdout and first in table.stdout


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")
def test_the_morning_report_in_chromium(nights):
    """The last report (the night whose test boot failed) after four nights: history,
    timeline, bytes and log links, seen in headless Chromium; the metrics beside it."""
    work = nights.pipeline.work
    report_dir = (work / "reports" / "latest").resolve()
    report = json.loads((report_dir / "report.json").read_text())
    check_report_in_browser(report_dir, [CLOUD], "nightly-report")
    shutil.copy(ARTIFACTS / "nightly-report.png", work.parent)
    dom = (ARTIFACTS / "nightly-report.dom.html").read_text()
    history = [n["run"] for n in report["history"][CLOUD]]
    assert history == ["2026-12-01", "2026-11-30", "2026-11-29", "2026-11-28"]
    assert dom.count('class="night ') == 4 and "unchanged since build" in dom
    stages = [s["stage"] for s in report["timeline"][CLOUD]]
    assert stages[:4] == ["build", "convert", "local_boot", "upload"]
    assert dom.count('class="bar ') == len(stages)
    assert report["links"] and all((report_dir / p).is_file() for p in report["links"].values())
    assert "build log" in report["links"] and any("console" in k for k in report["links"])
    assert report["bytes_sent"][CLOUD] > 0
    prom = (work / "metrics" / "imagefleet.prom").read_text()
    third = json.loads((work / "reports" / "2026-11-30" / "report.json").read_text())
    assert f'imagefleet_last_success_timestamp_seconds{{cloud="{CLOUD}"}} ' \
           f'{metrics.number(third["finished"])}' in prom
    assert f'imagefleet_cloud_up{{cloud="{CLOUD}"}} 0' in prom


def test_a_paused_cloud_is_skipped_and_shown(nights):
    config = nights.pipeline.config
    data = yaml.safe_load(config.read_text())
    paused = config.with_name("paused.yaml")
    paused.write_text(yaml.safe_dump({**data, "paused": [CLOUD]}, sort_keys=False))
    pipeline = Pipeline(paused, nights.pipeline.clouds_yaml, nights.pipeline.work)
    before = {i["id"] for i in nights.images()}
    started = time.time()
    result = pipeline.run("--now", "2026-12-03T02:00:00Z", "--rebuild", date=None)
    assert result.returncode == 0, result.stderr[-2000:]
    assert pipeline.tasks_run(since=started) == {}        # nothing built, nothing sent
    (row,) = pipeline.report()["clouds"]
    assert row["status"] == "paused" and pipeline.report()["ok"]
    assert {i["id"] for i in nights.images()} == before
