"""A single-store Glance that converts imports: failed and converting glance-direct imports,
and the pipeline's retention over its small listing pages (3 images) and hidden images.

Targets: the second upstream Glance (``upstream/single.py``: legacy
``[glance_store] stores``, the ``image_conversion`` plugin to raw) and the local
cloud's ``upstream-single`` personality (``image_import: {stores: single,
convert_to: raw, task_list: true}``). The module overrides ``target`` and the
session fixtures built on it, so the summary table lists these checks per target.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from pipeline.cloud.connection import Connection
from pipeline.cloud.glance import IMPORT_LOCK
from pipeline.cloud.marks import MANAGED
from pipeline.cloud.retention import apply_retention
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import load_profiles
from tests.conformance.conftest import (
    OCTET,
    PATCH_TYPE,
    TARGETS,
    Target,
    create_image,
    wait_for,
    wait_image,
)
from tests.conftest import REPO

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=TARGETS)
def target(request) -> Target:
    if request.param == "upstream":
        info = request.getfixturevalue("upstream_single")
        return Target("upstream", Path(info["clouds_yaml"]), info["cloud"],
                      f"{info['cloud']}-demo")
    lc = request.getfixturevalue("local_cloud")
    return Target("localcloud", lc.clouds_yaml, "upstream-single")


@pytest.fixture(scope="module")
def sess(target):
    return target.session()


@pytest.fixture(scope="module")
def image_api(target, sess):
    return target.image(sess)


@pytest.fixture(scope="module")
def backing_qcow2(tmp_path_factory) -> bytes:
    """A qcow2 whose header names a backing file: Glance's format inspector refuses it."""
    d = tmp_path_factory.mktemp("backing")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(d / "base.raw"), "16M"],
                   check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(d / "base.raw"),
                    "-F", "raw", str(d / "child.qcow2")], check=True)
    return (d / "child.qcow2").read_bytes()


def glance_direct(image_api, images, name: str, data: bytes) -> str:
    created = create_image(image_api, images, name)
    resp = image_api.put(f"/images/{created['id']}/stage", data=data,
                         headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    resp = image_api.post(f"/images/{created['id']}/import",
                          json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 202, resp.text
    return created["id"]


def test_single_store_failed_import(image_api, images, unique, backing_qcow2):
    """The image goes back to queued naming no store; only its task list says why."""
    image_id = glance_direct(image_api, images, unique, backing_qcow2)
    queued = wait_image(image_api, image_id, status="queued")
    assert not queued.get("os_glance_failed_import")
    assert not queued.get("os_glance_importing_to_stores")

    def failed_task():
        resp = image_api.get(f"/images/{image_id}/tasks")
        assert resp.status_code == 200, resp.text
        return next((t for t in resp.json()["tasks"] if t["status"] == "failure"), None)
    task = wait_for(failed_task, what=f"a failed import task of image {image_id}")
    assert task["type"] == "api_image_import"
    assert task["image_id"] == image_id
    assert task["message"]


def test_conversion_on_import(image_api, images, unique, qcow2_data):
    """The image_conversion plugin stores raw: disk_format, size and checksums change."""
    image_id = glance_direct(image_api, images, unique, qcow2_data)
    assert image_api.get(f"/images/{image_id}").json().get(IMPORT_LOCK)
    active = wait_image(image_api, image_id)
    # The flow goes on after active; its lock goes last (_CompleteTask).
    wait_for(lambda: not image_api.get(f"/images/{image_id}").json().get(IMPORT_LOCK),
             what=f"image {image_id} to lose its import lock")
    raw = bytes(64 * MiB)           # qcow2_data: an empty 64 MiB qcow2
    assert active["disk_format"] == "raw"
    assert active["size"] == len(raw)
    assert active["checksum"] == hashlib.md5(raw, usedforsecurity=False).hexdigest()
    assert active["os_hash_value"] == hashlib.sha512(raw).hexdigest()


def test_retention_pages_and_retries_hidden_images(target, image_api, images, unique):
    """Seven of our images over pages of three: retention sees them all; the protected
    one is skipped and hidden, listed again with os_hidden=true, tried again next run."""
    profile = load_profiles(REPO / "config" / "vendors")["upstream"]
    cloud = Cloud(config=load_clouds(target.clouds_yaml)[target.cloud], profile=profile,
                  disk_format="qcow2")
    ours = [create_image(image_api, images, f"{unique}-b{n}", **{MANAGED: "true"})["id"]
            for n in range(5)]
    protected = create_image(image_api, images, f"{unique}-b5", protected=True,
                             **{MANAGED: "true"})["id"]
    foreign = create_image(image_api, images, f"{unique}-by-hand")["id"]
    current = create_image(image_api, images, f"{unique}-b6", **{MANAGED: "true"})["id"]
    first = image_api.get("/images").json()
    assert len(first["images"]) <= 3 and first.get("next")

    def run():
        return apply_retention(cloud, keep=1, image_name=unique, current_id=current)
    result = run()
    assert sorted(result.deleted) == sorted(ours)
    assert [(s.id, s.reason, s.hidden) for s in result.skipped] == [
        (protected, "protected", True)]
    glance = Connection(cloud).glance
    assert protected not in {i.id for i in glance.list_all()}
    assert protected in {i.id for i in glance.list_all(hidden=True)}

    again = run()
    assert again.deleted == [] and [s.id for s in again.skipped] == [protected]
    resp = image_api.patch(f"/images/{protected}", headers={"Content-Type": PATCH_TYPE},
                           json=[{"op": "replace", "path": "/protected", "value": False}])
    assert resp.status_code == 200, resp.text
    last = run()
    assert last.deleted == [protected] and last.skipped == []
    left = {i.id for i in glance.list_all(hidden=True)}
    assert {foreign, current} <= left and not left & {protected, *ours}
