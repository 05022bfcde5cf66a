"""choose_upload_mechanism over the talks' cloud shapes, and the cases that must fail."""

from __future__ import annotations

import pytest

from pipeline.cloud.arrival import metadata_fields
from pipeline.cloud.mechanism import (
    Mechanism,
    choose_upload_mechanism,
    sends_gzip,
    upload_priority,
)
from pipeline.core.errors import UploadError
from pipeline.settings.config import load_profiles
from pipeline.settings.profile import MetadataSection
from tests.conftest import REPO

# shape: (profile's image.upload, Glance major, import methods, object-store?, expected)
SHAPES = {
    "rackspace-like: VHD via Swift + import task":
        (["task"], "2", (), True, Mechanism.TASK),
    "hp-like: Glance v1 only, POST with the data":
        (["put"], "1", (), True, Mechanism.PUT_V1),
    "dreamhost-like: Glance v2 PUT":
        (["put"], "2", (), True, Mechanism.PUT_V2),
    "vexxhost-like: PUT preferred over glance-direct":
        (["put", "glance-direct"], "2", ("glance-direct", "web-download"), True,
         Mechanism.PUT_V2),
    "vexxhost-like asking for interoperable import":
        (["glance-direct", "put"], "2", ("glance-direct",), True, Mechanism.GLANCE_DIRECT),
    "ovh-like: Glance v2 PUT":
        (["put"], "2", (), True, Mechanism.PUT_V2),
    "auro-like: v1 and v2 side by side, discovery chose v2":
        (["put"], "2", (), True, Mechanism.PUT_V2),
    "auro-like pinned to v1":
        (["put"], "1", (), True, Mechanism.PUT_V1),
    "no upload list in the profile: put":
        (None, "2", (), False, Mechanism.PUT_V2),
    "glance-direct not offered: fall back to put":
        (["glance-direct", "put"], "2", ("web-download",), True, Mechanism.PUT_V2),
    "web-download offered, staged in Swift":
        (["web-download"], "2", ("glance-direct", "web-download"), True,
         Mechanism.WEB_DOWNLOAD),
    "task wanted but v1 only: put on v1":
        (["task", "put"], "1", (), True, Mechanism.PUT_V1),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_shapes(shape):
    upload, version, methods, swift, expected = SHAPES[shape]
    assert choose_upload_mechanism(upload, version, methods, swift) is expected


IMPOSSIBLE = {
    "task without an object-store": (["task"], "2", (), False, "object-store"),
    "task on Glance v1": (["task"], "1", (), True, "Glance v2"),
    "glance-direct not among import methods": (["glance-direct"], "2", ("web-download",),
                                               True, "import methods (web-download)"),
    "web-download without Swift to serve from": (["web-download"], "2", ("web-download",),
                                                 False, "object-store"),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_no_fit_names_every_reason(case):
    upload, version, methods, swift, reason = IMPOSSIBLE[case]
    with pytest.raises(UploadError, match="no upload mechanism") as info:
        choose_upload_mechanism(upload, version, methods, swift)
    assert reason in str(info.value)


@pytest.mark.parametrize("name", ["rackspace-like", "hp-like", "dreamhost-like",
                                  "vexxhost-like", "ovh-like", "auro-like"])
def test_shipped_profiles_have_a_mechanism(name):
    """Every shipped vendor profile resolves on the API version it pins (or v2)."""
    profile = load_profiles(REPO / "config" / "vendors")[name]
    version = profile.image.api_version or "2"
    mechanism = choose_upload_mechanism(profile.image.upload, version,
                                        ("glance-direct",), True)
    assert mechanism.value
    assert mechanism.stages_in_swift == (mechanism in (Mechanism.TASK,
                                                       Mechanism.WEB_DOWNLOAD))


@pytest.mark.parametrize("upload_list, priority", [
    (None, 1),
    ([], 1),
    (["put"], 1),
    (["put", "task"], 1),
    (["glance-direct", "put"], 2),
    (["web-download"], 2),
    (["task"], 3),
    (["task", "put"], 3),
])
def test_upload_priority_longest_first(upload_list, priority):
    assert upload_priority(upload_list) == priority


@pytest.mark.parametrize("api, expected", [
    ("2", {"min_disk": 2, "min_ram": 512, "tags": ["lts"]}),      # dreamhost-/vexxhost-like
    ("1", {"min_disk": "2", "min_ram": "512"}),                     # hp-like: headers, no tags
])
def test_metadata_fields_by_api(api, expected):
    meta = MetadataSection(min_disk=2, min_ram=512, protected=True, tags=("lts",))
    assert metadata_fields(meta, api) == expected
    assert metadata_fields(MetadataSection(), api) == {}           # today's defaults: nothing


@pytest.mark.parametrize("disk_format, mechanism, inflating, expected", [
    ("raw", Mechanism.WEB_DOWNLOAD, ["web-download"], True),     # Glance 2025.1 + plugin
    ("raw", Mechanism.GLANCE_DIRECT, ["glance-direct", "web-download"], True),   # 2026.1
    ("raw", Mechanism.GLANCE_DIRECT, ["web-download"], False),   # 2025.1 fails this one
    ("raw", Mechanism.PUT_V2, ["glance-direct", "web-download"], False),  # PUT stores as sent
    ("raw", Mechanism.TASK, ["web-download"], False),
    ("raw", Mechanism.WEB_DOWNLOAD, [], False),                  # no plugin: the default
    ("qcow2", Mechanism.WEB_DOWNLOAD, ["web-download"], False),  # qcow2 compresses itself
])
def test_sends_gzip(disk_format, mechanism, inflating, expected):
    assert sends_gzip(disk_format, mechanism, inflating) is expected
