"""upload_image of a raw image as its gzip, to a Glance whose decompression plugin
inflates glance-direct imports (2026.1, the local cloud's ``image_import:
{decompress: true, decompress_sets_size: true}``); 2025.1's refusal of that path
is checked against upstream in tests/conformance/test_decompression.py."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from localcloud.testing import personality_file, running_cloud
from pipeline.cloud.upload import upload_image
from pipeline.core.checksums import file_digests
from pipeline.image.convert import convert_image, gzip_path
from tests.integration.test_upload import (
    FAST,
    assert_only,
    glance,
    make_cloud,
    new_build,
    profiles,  # noqa: F401 - the vendor profiles fixture
)

NAME = "vexxhost-like"
INFLATING = {"decompress": True, "decompress_sets_size": True, "task_list": True}
MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_faults_left")


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    d = tmp_path_factory.mktemp("gzip-import")
    with running_cloud([personality_file(d, NAME, image_import=INFLATING)],
                       d / "data") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def raw_with_gzip(tmp_path_factory):
    d = tmp_path_factory.mktemp("gzip-image")
    base = d / "base.raw"
    base.write_bytes(os.urandom(MiB) + bytes(15 * MiB))
    dest = d / "image.raw"
    record = convert_image(base, dest, "raw", compress=True, gzip_dest=gzip_path(dest))
    dest.with_name(dest.name + ".json").write_text(json.dumps(record))
    return dest


def test_raw_goes_as_gzip_by_glance_direct(lc, profiles, raw_with_gzip):  # noqa: F811
    cloud = dataclasses.replace(
        make_cloud(lc, profiles, NAME, profile_changes={
            "upload": ["glance-direct"], "raw_compressed_imports": ["glance-direct"]}),
        disk_format="raw")
    ours = file_digests(raw_with_gzip)
    record = upload_image(cloud, raw_with_gzip, new_build(), **FAST)
    try:
        assert (record.mechanism, record.compressed) == ("glance-direct", "gzip")
        assert record.bytes == gzip_path(raw_with_gzip).stat().st_size < ours.size // 8
        image = glance(cloud).get(record.image_id)
        assert (image.status, image.disk_format, image.size) == ("active", "raw", ours.size)
        assert (image.checksum, image.os_hash_value) == (ours.md5, ours.sha512)
        assert_only(lc, NAME, [record.image_id])
    finally:
        glance(cloud).delete(record.image_id)
