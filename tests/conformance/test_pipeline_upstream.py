"""imagefleet's upload against upstream OpenStack, by each mechanism the upstream profile allows.

Each upload must end with one active image whose checksum is ours, nothing
staged left behind (no Swift object or segment, no file in Glance's staging
or task stores), and a rerun that sends zero bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import Profile, load_profiles
from tests.conformance.conftest import Target
from tests.conftest import REPO

MiB = 1024 * 1024
MECHANISMS = {"put": "glance-v2-put", "glance-direct": "glance-direct",
              "task": "swift-task-import"}
_builds = itertools.count(1)


@pytest.fixture(scope="module")
def qcow2_file(tmp_path_factory) -> Path:
    """A 12 MiB qcow2 of random data (random, so it does not shrink to nothing)."""
    d = tmp_path_factory.mktemp("pipeline-upstream")
    raw = d / "disk.raw"
    raw.write_bytes(os.urandom(12 * MiB))
    path = d / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True)
    return path


def upstream_cloud_for(upstream_cloud, mechanism: str) -> Cloud:
    """The shipped upstream profile, with its upload list narrowed to one mechanism."""
    profile = load_profiles(REPO / "config" / "vendors")["upstream"]
    data = {**profile.data, "image": {**profile.data["image"], "upload": [mechanism]}}
    config = load_clouds(upstream_cloud.clouds_yaml)[upstream_cloud.cloud]
    return Cloud(config=config, profile=Profile(profile.name, data, profile.path),
                 disk_format="qcow2")


def data_files(upstream_cloud, store: str) -> list[str]:
    """Files left in one of Glance's local stores (staging, tasks) of the upstream data dir."""
    root = Path(upstream_cloud.state["root"]) / "data" / "glance" / store
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def swift_leftovers(image_api_session, container: str) -> list[str]:
    names = []
    for name in (container, f"{container}_segments"):
        resp = image_api_session.get(f"/{name}?format=json")
        if resp.status_code == 200:
            names += [f"{name}/{o['name']}" for o in resp.json()]
    return names


@pytest.mark.parametrize("mechanism", ["put", "glance-direct", "task"])
def test_upload_to_upstream(upstream_cloud, qcow2_file, mechanism):
    cloud = upstream_cloud_for(upstream_cloud, mechanism)
    build = BuildInfo(build_id=f"up{next(_builds)}-{os.getpid()}",
                      digest="sha256:" + "cd" * 32, image_name=f"imagefleet-upstream-{mechanism}")
    target = Target("upstream", upstream_cloud.clouds_yaml, upstream_cloud.cloud)
    sess = target.session()
    image_api, swift = target.image(sess), target.object_store(sess)
    data = qcow2_file.read_bytes()
    record = None
    try:
        record = upload_image(cloud, qcow2_file, build, poll_interval=0.2, retry_wait=0.2)
        assert record.mechanism == MECHANISMS[mechanism]
        assert record.bytes == record.size == len(data)
        image = image_api.get(f"/images/{record.image_id}").json()
        assert image["status"] == "active"
        assert image["disk_format"] == "qcow2"
        assert image["checksum"] == hashlib.md5(data).hexdigest() == record.checksum
        assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert image["imagefleet_sha256"] == hashlib.sha256(data).hexdigest()
        named = image_api.get(f"/images?name={build.cloud_image_name}").json()["images"]
        assert [i["id"] for i in named] == [record.image_id]
        assert swift_leftovers(swift, cloud.profile.image.staging_container) == []
        assert data_files(upstream_cloud, "staging") == []
        assert data_files(upstream_cloud, "tasks") == []

        again = upload_image(cloud, qcow2_file, build, poll_interval=0.2)
        assert again.skipped and again.bytes == 0
        assert again.image_id == record.image_id
    finally:
        for image in image_api.get(f"/images?name={build.cloud_image_name}").json()["images"]:
            image_api.delete(f"/images/{image['id']}")
