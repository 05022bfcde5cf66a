"""Retention against the local cloud: keep=2 over three builds leaves two of ours,
and an image we did not make is untouched."""

from __future__ import annotations

import os
import time

import pytest

from localcloud.testing import running_cloud
from pipeline.cloud.connection import Connection
from pipeline.cloud.marks import VERIFIED, BuildInfo
from pipeline.cloud.retention import apply_retention, record_failed_verify
from pipeline.cloud.upload import upload_image
from pipeline.core import runner
from tests.integration.test_upload import FAST, glance, make_cloud


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    with running_cloud(["dreamhost-like", "hp-like"], tmp_path_factory.mktemp("lc")) as cloud:
        yield cloud


@pytest.mark.parametrize("name", ["dreamhost-like", "hp-like"])   # Glance v2 and v1
def test_keep_two_of_three_and_leave_foreign_images(lc, tmp_path, name):
    from pipeline.settings.config import load_profiles
    from tests.conftest import REPO
    cloud = make_cloud(lc, load_profiles(REPO / "config" / "vendors"), name)
    path = tmp_path / "disk.img"
    if cloud.disk_format == "raw":
        path.write_bytes(os.urandom(2 * 2**20))
    else:
        runner.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"])
    g = glance(cloud)
    fields = {"name": "imagefleet-debian-by-hand", "disk_format": cloud.disk_format,
              "container_format": "bare"}
    foreign = (g.create_v1(fields, {}, path.read_bytes()) if g.version == "1"
               else g.create_v2(fields, {}))
    ids = []
    for n in range(3):
        build = BuildInfo(build_id=f"r{n}{os.getpid()}", digest="sha256:" + "ef" * 32,
                          image_name="imagefleet-debian")
        ids.append(upload_image(cloud, path, build, **FAST).image_id)
        time.sleep(1.1)   # distinct created_at
    deleted = apply_retention(cloud, keep=2, image_name="imagefleet-debian",
                              current_id=ids[-1])
    assert deleted == [ids[0]]
    left = {i["id"] for i in lc.leftovers(name).get("images", [])}
    assert left == {ids[1], ids[2], foreign.id}
    assert g.get(ids[2]).properties.get(VERIFIED) == "true"     # the one that passed
    assert VERIFIED not in g.get(foreign.id).properties

    # A fourth build fails its test boot, a fifth passes: the failed one holds no
    # place among the two kept and goes; the older good one stays as the fallback.
    for n in (3, 4):
        build = BuildInfo(build_id=f"r{n}{os.getpid()}", digest="sha256:" + "ef" * 32,
                          image_name="imagefleet-debian")
        ids.append(upload_image(cloud, path, build, **FAST).image_id)
        time.sleep(1.1)
    record_failed_verify(Connection(cloud), ids[3])
    assert g.get(ids[3]).properties.get(VERIFIED) == "false"
    deleted = apply_retention(cloud, keep=2, image_name="imagefleet-debian",
                              current_id=ids[4])
    assert sorted(deleted) == sorted([ids[3], ids[1]])
    left = {i["id"] for i in lc.leftovers(name).get("images", [])}
    assert left == {ids[2], ids[4], foreign.id}
    for image_id in left:
        g.delete(image_id)
