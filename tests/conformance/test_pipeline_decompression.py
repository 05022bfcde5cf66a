"""imagefleet's raw upload as a gzip that the upstream Glance inflates (image_decompression).

The conversion writes the raw file and its gzip (``convert_image(compress=True)``);
a raw cloud whose profile lists web-download in ``image.raw_compressed_imports`` and
uploads by web-download is sent the gzip, and Glance stores the inflated raw, whose
digests are the raw file's.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.image.convert import convert_image, gzip_path
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import Profile, load_profiles
from tests.conformance.conftest import Target
from tests.conformance.test_pipeline_upstream import data_files, swift_leftovers
from tests.conftest import REPO

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def converted_raw(tmp_path_factory):
    """A raw conversion with its gzip and record, as ``ConvertImage`` leaves them."""
    d = tmp_path_factory.mktemp("pipeline-decompression")
    base = d / "base.raw"
    base.write_bytes(os.urandom(MiB) + bytes(15 * MiB))
    dest = d / "image.raw"
    record = convert_image(base, dest, "raw", compress=True, gzip_dest=gzip_path(dest))
    dest.with_name(dest.name + ".json").write_text(json.dumps(record))
    return dest, gzip_path(dest), record


def raw_cloud(upstream_cloud, upload: list[str], inflating: list[str]) -> Cloud:
    profile = load_profiles(REPO / "config" / "vendors")["upstream"]
    image = {**profile.data["image"], "upload": upload, "raw_compressed_imports": inflating}
    config = load_clouds(upstream_cloud.clouds_yaml)[upstream_cloud.cloud]
    return Cloud(config=config, profile=Profile(profile.name, {**profile.data, "image": image},
                                                profile.path), disk_format="raw")


def test_raw_sent_as_gzip_and_stored_inflated(upstream_cloud, converted_raw):
    raw, gz, record = converted_raw
    assert record["gzip"]["bytes"] == gz.stat().st_size < raw.stat().st_size // 8
    cloud = raw_cloud(upstream_cloud, ["web-download"], ["web-download"])
    build = BuildInfo(build_id=f"gz-{os.getpid()}", digest="sha256:" + "9a" * 32,
                      image_name="imagefleet-upstream-gzip")
    target = Target("upstream", upstream_cloud.clouds_yaml, upstream_cloud.cloud)
    sess = target.session()
    image_api, swift = target.image(sess), target.object_store(sess)
    data = raw.read_bytes()
    try:
        sent = upload_image(cloud, raw, build, poll_interval=0.2, retry_wait=0.2)
        assert sent.mechanism == "web-download" and sent.compressed == "gzip"
        assert sent.bytes == gz.stat().st_size           # what crossed the wire
        assert sent.size == len(data) and sent.converted_by_cloud is None
        image = image_api.get(f"/images/{sent.image_id}").json()
        assert (image["status"], image["disk_format"]) == ("active", "raw")
        assert image["size"] == len(data)
        assert image["checksum"] == hashlib.md5(data).hexdigest() == sent.checksum
        assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert swift_leftovers(swift, cloud.profile.image.staging_container) == []
        assert data_files(upstream_cloud, "staging") == []

        again = upload_image(cloud, raw, build, poll_interval=0.2)
        assert again.skipped and again.bytes == 0 and again.image_id == sent.image_id
    finally:
        for image in image_api.get(f"/images?name={build.cloud_image_name}").json()["images"]:
            image_api.delete(f"/images/{image['id']}")


def test_gzip_only_where_glance_inflates_it(upstream_cloud, converted_raw):
    """glance-direct is not in the list (2025.1 fails it): the raw file itself goes."""
    raw, _, _ = converted_raw
    cloud = raw_cloud(upstream_cloud, ["glance-direct"], ["web-download"])
    build = BuildInfo(build_id=f"gzd-{os.getpid()}", digest="sha256:" + "9b" * 32,
                      image_name="imagefleet-upstream-gzip-direct")
    target = Target("upstream", upstream_cloud.clouds_yaml, upstream_cloud.cloud)
    image_api = target.image(target.session())
    try:
        sent = upload_image(cloud, raw, build, poll_interval=0.2, retry_wait=0.2)
        assert sent.mechanism == "glance-direct" and sent.compressed is None
        assert sent.bytes == raw.stat().st_size
        image = image_api.get(f"/images/{sent.image_id}").json()
        assert image["checksum"] == hashlib.md5(raw.read_bytes()).hexdigest()
    finally:
        for image in image_api.get(f"/images?name={build.cloud_image_name}").json()["images"]:
            image_api.delete(f"/images/{image['id']}")
