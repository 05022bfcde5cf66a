"""Retention against the local cloud: keep=2 over three builds leaves two of ours,
an image we did not make is untouched, every page of the listing is seen, and an
image the store will not delete (protected, in use) is skipped, not fatal."""

from __future__ import annotations

import os
import time

import pytest

from localcloud.testing import personality_file, running_cloud
from pipeline.cloud.connection import Connection
from pipeline.cloud.glance import JSON_PATCH
from pipeline.cloud.marks import MANAGED, VERIFIED, BuildInfo
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
                              current_id=ids[-1]).deleted
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
                              current_id=ids[4]).deleted
    assert sorted(deleted) == sorted([ids[3], ids[1]])
    left = {i["id"] for i in lc.leftovers(name).get("images", [])}
    assert left == {ids[2], ids[4], foreign.id}
    for image_id in left:
        g.delete(image_id)


# --- real stores: pages of images, protected and in-use images -----------------------

PAGED = ["vexxhost-like", "dreamhost-like", "hp-like"]     # Glance v2.9, v2.5, v1


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    """Clouds whose listings page at 2 images (3 at most): six images take two pages."""
    d = tmp_path_factory.mktemp("paged")
    small = {"limit_default": 2, "limit_max": 3}
    files = [personality_file(d, name, image_listing=small) for name in PAGED]
    with running_cloud(files, d / "data") as cloud:
        yield cloud


def _image(g, cloud, name, **fields):
    """A record only (no data): retention weighs names and properties, not bytes."""
    props = {} if name.startswith("by-hand") else {MANAGED: "true"}
    fields = {"name": name, "disk_format": cloud.disk_format, "container_format": "bare",
              **fields}
    if g.version == "1":
        fields = {k: str(v) for k, v in fields.items()}
        return g.create_v1(fields, props, None).id
    return g.create_v2(fields, props).id


@pytest.mark.parametrize("name", PAGED)
def test_undeletable_images_are_skipped_and_every_page_is_seen(paged, name):
    from pipeline.settings.config import load_profiles
    from tests.conftest import REPO
    cloud = make_cloud(paged, load_profiles(REPO / "config" / "vendors"), name)
    g = glance(cloud)
    old = [_image(g, cloud, f"imagefleet-debian-old{n}") for n in range(2)]
    protected = _image(g, cloud, "imagefleet-debian-protected", protected=True)
    busy = _image(g, cloud, "imagefleet-debian-busy")
    foreign = _image(g, cloud, "by-hand")
    current = _image(g, cloud, "imagefleet-debian-new")
    paged.add_fault(name, kind="in_use", method="DELETE", path=busy, times=None)
    try:
        result = apply_retention(cloud, keep=1, image_name="imagefleet-debian",
                                 current_id=current)
        assert sorted(result.deleted) == sorted(old)
        skipped = {s.id: (s.reason, s.hidden) for s in result.skipped}
        hidden = name == "vexxhost-like"                    # os_hidden needs v2.7
        assert skipped == {protected: ("protected", hidden), busy: ("in use by the store", hidden)}
        assert "in use" in next(s.detail for s in result.skipped if s.id == busy)
        left = {i["id"] for i in paged.leftovers(name).get("images", [])}
        assert left == {protected, busy, foreign, current}
        assert {i.id for i in g.list_all()} == ({foreign, current} if hidden else left)
        assert {i.id for i in g.list_all(hidden=True)} == left

        # The next run tries the skipped ones again, hidden or not ...
        again = apply_retention(cloud, keep=1, image_name="imagefleet-debian",
                                current_id=current)
        assert again.deleted == []
        assert {s.id: (s.reason, s.hidden) for s in again.skipped} == skipped
        # ... and deletes them once the store lets go.
        paged.clear_faults()
        _unprotect(g, protected)
        last = apply_retention(cloud, keep=1, image_name="imagefleet-debian",
                               current_id=current)
        assert sorted(last.deleted) == sorted([protected, busy]) and last.skipped == []
        left = {i["id"] for i in paged.leftovers(name).get("images", [])}
        assert left == {foreign, current}
    finally:
        paged.clear_faults()
        for image_id in (protected, busy, foreign, current):
            _unprotect(g, image_id)
            g.delete(image_id)


def _unprotect(g, image_id: str) -> None:
    if g.version == "1":
        g.call("PUT", f"images/{image_id}", ok=(404,), headers={
            "x-image-meta-protected": "False", "x-glance-registry-purge-props": "false"})
    else:
        g.call("PATCH", f"images/{image_id}", headers=JSON_PATCH, ok=(404,),
               json=[{"op": "replace", "path": "/protected", "value": False}])
