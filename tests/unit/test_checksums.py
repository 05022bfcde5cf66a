"""Digests in one pass, cached by size and mtime; the upload's pure checks on them."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from pipeline.cloud.arrival import (
    checksum_problem,
    converted_by_cloud,
    recorded_conversion,
    reusable,
)
from pipeline.cloud.images import Image
from pipeline.cloud.marks import CONVERTED_FROM, BuildInfo, image_properties, is_this_build
from pipeline.core import checksums
from pipeline.core.checksums import cache_path, compute_digests, file_digests


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "disk.qcow2"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def test_matches_hashlib(image_file):
    data = image_file.read_bytes()
    d = compute_digests(image_file, chunk_size=1024 * 1024)
    assert d.size == len(data)
    assert d.md5 == hashlib.md5(data).hexdigest()
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.sha512 == hashlib.sha512(data).hexdigest()
    assert d.get("SHA512") == d.sha512 and d.get("sha1") is None


def test_empty_file(tmp_path):
    path = tmp_path / "empty.raw"
    path.touch()
    assert compute_digests(path).sha256 == hashlib.sha256(b"").hexdigest()


def test_cached_beside_the_file(image_file, monkeypatch):
    first = file_digests(image_file)
    cached = json.loads(cache_path(image_file).read_text())
    assert cached["sha256"] == first.sha256 and cached["size"] == first.size
    monkeypatch.setattr(checksums, "compute_digests",
                        lambda *a, **k: pytest.fail("read the file again"))
    assert file_digests(image_file) == first


def test_rewrite_invalidates_cache(image_file):
    first = file_digests(image_file)
    image_file.write_bytes(b"other content")
    st = image_file.stat()
    os.utime(image_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = file_digests(image_file)
    assert second.sha256 == hashlib.sha256(b"other content").hexdigest() != first.sha256


def test_corrupt_cache_is_recomputed(image_file):
    cache_path(image_file).write_text("{not json")
    assert file_digests(image_file).size == image_file.stat().st_size


BUILD = BuildInfo(build_id="20240101-1", digest="sha256:abc", image_name="imagefleet-debian")


def _digests(tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(b"x" * 100)
    return compute_digests(path)


def _image(d, **kw):
    props = image_properties(BUILD, "qcow2", d)
    fields = dict(id="i1", name=BUILD.cloud_image_name, status="active", disk_format="qcow2",
                  size=d.size, checksum=d.md5, os_hash_algo="sha512", os_hash_value=d.sha512,
                  properties=props)
    fields.update(kw)
    return Image(**fields)


def test_properties_identify_the_build(tmp_path):
    d = _digests(tmp_path)
    props = image_properties(BUILD, "vhd", d, {"os_distro": "debian", "imagefleet_build": "x"})
    assert props["imagefleet_managed"] == "true"
    assert props["imagefleet_build"] == "20240101-1"        # ours win over the profile's
    assert props["imagefleet_digest"] == "sha256:abc"
    assert props["imagefleet_format"] == "vhd"
    assert props["imagefleet_sha256"] == d.sha256
    assert props["os_distro"] == "debian"
    assert BUILD.cloud_image_name == "imagefleet-debian-20240101-1"


def test_someone_elses_image_is_never_ours(tmp_path):
    d = _digests(tmp_path)
    assert is_this_build(_image(d), BUILD)
    assert not is_this_build(_image(d, properties={}), BUILD)
    other = BuildInfo("20240102-1", "sha256:def", "imagefleet-debian")
    assert not is_this_build(_image(d), other)


@pytest.mark.parametrize("change, expected", [
    ({}, True),
    ({"status": "saving"}, False),
    ({"disk_format": "raw"}, False),
    ({"checksum": "0" * 32}, False),
])
def test_reusable(tmp_path, change, expected):
    d = _digests(tmp_path)
    assert reusable(_image(d, **change), BUILD, "qcow2", d) is expected


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"checksum": "0" * 32}, "md5"),
    ({"os_hash_value": "0" * 128}, "sha512 differs"),
    ({"size": 99}, "size 99"),
    ({"checksum": None, "os_hash_value": None}, "no checksum"),
    ({"checksum": None}, None),                    # os_hash_value alone is enough
    ({"os_hash_algo": None, "os_hash_value": None}, None),    # Glance v1: md5 only
])
def test_checksum_problem(tmp_path, change, problem):
    d = _digests(tmp_path)
    found = checksum_problem(_image(d, **change), d)
    if problem is None:
        assert found is None
    else:
        assert problem in found


CONVERTED = {"disk_format": "raw", "size": 10 * 2**20, "checksum": "0" * 32,
             "os_hash_value": "0" * 128}


@pytest.mark.parametrize("change, imported, expected", [
    (CONVERTED, True, {"from": "qcow2", "to": "raw", "size": 10 * 2**20}),
    (CONVERTED, False, None),                                  # a PUT is never converted
    ({**CONVERTED, "disk_format": "qcow2"}, True, None),       # same format: a bad upload
    ({**CONVERTED, "size": None}, True, None),
    ({**CONVERTED, "properties": {}}, True, None),             # not our recorded upload
    ({}, True, None),
])
def test_converted_by_cloud(tmp_path, change, imported, expected):
    d = _digests(tmp_path)
    assert converted_by_cloud(_image(d, **change), "qcow2", d, imported) == expected


def test_mismatch_without_format_change_is_still_a_problem(tmp_path):
    d = _digests(tmp_path)
    image = _image(d, checksum="0" * 32, size=d.size + 1)
    assert converted_by_cloud(image, "qcow2", d, True) is None
    assert "md5" in checksum_problem(image, d)


def test_a_recorded_conversion_is_reusable(tmp_path):
    d = _digests(tmp_path)
    image = _image(d, **CONVERTED)
    assert not reusable(image, BUILD, "qcow2", d)
    image.properties[CONVERTED_FROM] = "qcow2"
    assert reusable(image, BUILD, "qcow2", d)
    assert recorded_conversion(image, "qcow2") == {"from": "qcow2", "to": "raw",
                                                   "size": 10 * 2**20}
