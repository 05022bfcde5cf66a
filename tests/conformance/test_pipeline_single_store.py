"""imagefleet's glance-direct upload to the single-store, converting upstream Glance.

``upstream/single.py`` runs it: a failed import there reverts the image to
``queued`` with nothing in ``os_glance_failed_import``, and every successful
import is converted to raw by Glance's ``image_conversion`` plugin.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.cloud.marks import CONVERTED_FROM, BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.core import errors
from pipeline.run.report import cloud_row, make_report, render_html
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import Profile, load_profiles
from tests.conformance.conftest import Target
from tests.conftest import REPO

MiB = 1024 * 1024
# Far below the shipped 600 s, far above the seconds a failed import takes to
# show: a pipeline that misses the failure ends in WaitTimeout, not UploadError.
ACTIVE_TIMEOUT = 120


def single_cloud(info: dict) -> Cloud:
    """The shipped upstream profile, glance-direct only, on the single-store Glance."""
    profile = load_profiles(REPO / "config" / "vendors")["upstream"]
    image = {**profile.data["image"], "upload": ["glance-direct"],
             "active_timeout": ACTIVE_TIMEOUT}
    config = load_clouds(Path(info["clouds_yaml"]))[info["cloud"]]
    return Cloud(config=config, profile=Profile(profile.name, {**profile.data, "image": image},
                                                profile.path), disk_format="qcow2")


def build_for(name: str) -> BuildInfo:
    return BuildInfo(build_id=f"single-{os.getpid()}", digest="sha256:" + "ef" * 32,
                     image_name=f"imagefleet-single-{name}")


@pytest.fixture
def image_api(upstream_single):
    target = Target("upstream", Path(upstream_single["clouds_yaml"]), upstream_single["cloud"])
    return target.image(target.session())


def named(image_api, build: BuildInfo) -> list[dict]:
    return image_api.get(f"/images?name={build.cloud_image_name}").json()["images"]


def test_failed_single_store_import_ends_with_glances_message(upstream_single, image_api,
                                                              tmp_path):
    cloud = single_cloud(upstream_single)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "base.raw"), "16M"],
                   check=True)
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(tmp_path / "base.raw"),
                    "-F", "raw", str(path)], check=True)
    build = build_for("refused")
    try:
        with pytest.raises(errors.PipelineError) as failed:
            upload_image(cloud, path, build, poll_interval=0.2, retry_wait=0.2)
        error = failed.value
        assert type(error) is errors.UploadError, f"{type(error).__name__}: {error}"
        assert error.where == upstream_single["cloud"] and error.step == "upload"
        # Glance's own words, from the image's task list (Glance 30 says
        # "Task failed due to Internal Error" for an error inside the flow).
        assert "failed: Task failed due to" in str(error)
        assert "\n" not in str(error)
        assert named(image_api, build) == []
    finally:
        for image in named(image_api, build):
            image_api.delete(f"/images/{image['id']}")


def test_conversion_by_upstream_glance_is_recorded(upstream_single, image_api, tmp_path):
    cloud = single_cloud(upstream_single)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(12 * MiB))
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True)
    build = build_for("converted")
    try:
        record = upload_image(cloud, path, build, poll_interval=0.2, retry_wait=0.2)
        assert record.mechanism == "glance-direct"
        assert record.converted_by_cloud == {"from": "qcow2", "to": "raw", "size": 12 * MiB}
        image = image_api.get(f"/images/{record.image_id}").json()
        assert image["status"] == "active" and image["disk_format"] == "raw"
        assert image["checksum"] == hashlib.md5(raw.read_bytes()).hexdigest()
        assert image[CONVERTED_FROM] == "qcow2"
        row = cloud_row(cloud.name, "upstream", "qcow2", build=None, convert=None,
                        local_boot=None, upload=record.to_dict(), verify=None, error=None,
                        failed_stage=None)
        page = render_html(make_report("r1", build.build_id, [row]))
        assert f"converted by the cloud from qcow2 to raw ({12 * MiB} bytes)" in page

        again = upload_image(cloud, path, build, poll_interval=0.2)
        assert again.skipped and again.bytes == 0 and again.image_id == record.image_id
        assert again.converted_by_cloud == record.converted_by_cloud
    finally:
        for image in named(image_api, build):
            image_api.delete(f"/images/{image['id']}")
