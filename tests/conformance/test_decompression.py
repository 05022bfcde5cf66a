"""Glance's image_decompression import plugin, as the upstream target's main Glance runs it.

Upstream 2025.1 (``glance/async_/flows/plugins/image_decompression.py``): an
interoperable import of a gzip is inflated before the store unless the image's
``container_format`` is ``compressed``; by web-download the image ends as the
inflated raw, by glance-direct the import fails because the stage's size stays
on the image (bug 2132607, fixed in 2026.1).  The local cloud's ``upstream``
personality has ``image_import: {decompress: true}`` and serves no web-download.
"""

from __future__ import annotations

import gzip
import os

import pytest

from tests.conformance.conftest import OCTET, create_image, md5, sha512, wait_for, wait_image
from tests.conformance.test_object import put_object, temp_url

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def raw_and_gzip() -> tuple[bytes, bytes]:
    """A raw disk of some random data and zeros, and its gzip (about a tenth of it)."""
    raw = os.urandom(MiB // 4) + bytes(3 * MiB)
    return raw, gzip.compress(raw, mtime=0)


def stage_and_import(image_api, image_id: str, data: bytes) -> None:
    resp = image_api.put(f"/images/{image_id}/stage", data=data, headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    resp = image_api.post(f"/images/{image_id}/import",
                          json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 202, resp.text


def test_web_download_inflates_gzip(image_api, swift, containers, images, unique,
                                    raw_and_gzip):
    raw, gz = raw_and_gzip
    put_object(swift, containers, unique, "disk.raw.gz", gz)
    created = create_image(image_api, images, unique, disk_format="raw")
    resp = image_api.post(f"/images/{created['id']}/import", json={
        "method": {"name": "web-download", "uri": temp_url(swift, f"{unique}/disk.raw.gz")}})
    assert resp.status_code == 202, resp.text
    active = wait_image(image_api, created["id"])
    assert (active["disk_format"], active["container_format"]) == ("raw", "bare")
    assert active["size"] == len(raw)
    assert active["checksum"] == md5(raw)
    assert active["os_hash_value"] == sha512(raw)
    assert image_api.get(f"/images/{created['id']}/file").content == raw


def test_glance_direct_gzip_fails_on_the_staged_size(image_api, images, unique, raw_and_gzip):
    """2025.1: inflated, then refused by the store because the image keeps the gzip's size."""
    _, gz = raw_and_gzip
    created = create_image(image_api, images, unique, disk_format="raw")
    stage_and_import(image_api, created["id"], gz)

    def failed():
        doc = image_api.get(f"/images/{created['id']}").json()
        return doc if doc.get("os_glance_failed_import") else None
    doc = wait_for(failed, 60, "the import to fail")
    # upstream leaves the multi-store image "importing", the local cloud reverts it to
    # "queued" (as for any failed import there); neither ever makes it active
    assert doc["status"] in ("importing", "queued") and doc["checksum"] is None
    task = wait_for(lambda: next((t for t in image_api.get(
        f"/images/{created['id']}/tasks").json()["tasks"] if t["status"] == "failure"), None),
        30, "the import task to fail")
    assert "size of uploaded data is different" in task["message"]


def test_compressed_container_is_stored_as_sent(image_api, images, unique, raw_and_gzip):
    _, gz = raw_and_gzip
    created = create_image(image_api, images, unique, disk_format="raw",
                           container_format="compressed")
    stage_and_import(image_api, created["id"], gz)
    active = wait_image(image_api, created["id"])
    assert active["container_format"] == "compressed"
    assert active["size"] == len(gz)
    assert active["checksum"] == md5(gz)
