"""A single-store Glance that converts imports: failed and converting glance-direct imports.

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

from tests.conformance.conftest import (
    OCTET,
    TARGETS,
    Target,
    create_image,
    wait_for,
    wait_image,
)

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
    active = wait_image(image_api, image_id)
    raw = bytes(64 * MiB)           # qcow2_data: an empty 64 MiB qcow2
    assert active["disk_format"] == "raw"
    assert active["size"] == len(raw)
    assert active["checksum"] == hashlib.md5(raw, usedforsecurity=False).hexdigest()
    assert active["os_hash_value"] == hashlib.sha512(raw).hexdigest()
