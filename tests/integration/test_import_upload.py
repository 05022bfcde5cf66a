"""upload_image through interoperable import on clouds that do more than store the data.

The cloud is vexxhost-like with ``image_import`` set as a Ceph-backed, single-store
Glance with the image_conversion plugin is (docs/vendor-behaviour.md, "Failed
interoperable import" and "Conversion on import").
"""

from __future__ import annotations

import json
import time

import pytest

from localcloud.testing import personality_file, running_cloud
from pipeline.cloud.glance import IMPORT_LOCK
from pipeline.cloud.marks import CONVERTED_FROM, MANAGED
from pipeline.cloud.upload import upload_image
from pipeline.core import errors
from pipeline.core.waiting import iterate_timeout
from tests.integration.test_upload import (
    FAST,
    assert_only,
    glance,
    images,  # noqa: F401 - the module's image fixture
    make_cloud,
    new_build,
    profiles,  # noqa: F401 - the vendor profiles fixture
)

NAME = "vexxhost-like"
CEPH_IMPORT = {"stores": "single", "convert_to": "raw", "task_list": True, "import_lock": True}
pytestmark = pytest.mark.usefixtures("no_faults_left")


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    d = tmp_path_factory.mktemp("ceph-import")
    with running_cloud([personality_file(d, NAME, image_import=CEPH_IMPORT)],
                       d / "data") as cloud:
        yield cloud


def importing_cloud(lc, profiles, **changes):  # noqa: F811 - fixture passed in
    return make_cloud(lc, profiles, NAME, profile_changes={"upload": ["glance-direct"],
                                                           **changes})


def test_failed_import_ends_at_once_with_glances_message(lc, profiles, images):  # noqa: F811
    lc.add_fault(NAME, kind="task_fail", method="POST", path="/import$",
                 message="Image import failed: the staging area is full")
    cloud = importing_cloud(lc, profiles, active_timeout=120)
    began = time.monotonic()
    with pytest.raises(errors.UploadError) as info:
        upload_image(cloud, images["qcow2"], new_build(), **FAST)
    assert time.monotonic() - began < 15            # not the 120 s active_timeout
    line = str(info.value)
    assert line.startswith(f"{NAME}: upload: Glance v2 import of image ") and "\n" not in line
    assert line.endswith("failed: Image import failed: the staging area is full")
    assert_only(lc, NAME, [])


def test_conversion_on_import_is_recorded_not_failed(lc, profiles, images):  # noqa: F811
    cloud = importing_cloud(lc, profiles)
    assert cloud.disk_format == "qcow2"
    build = new_build()
    record = upload_image(cloud, images["qcow2"], build, **FAST)
    try:
        assert record.mechanism == "glance-direct"
        size = images["raw"].stat().st_size
        assert record.converted_by_cloud == {"from": "qcow2", "to": "raw", "size": size}
        assert json.loads(json.dumps(record.to_dict()))["converted_by_cloud"]["to"] == "raw"
        image = glance(cloud).get(record.image_id)
        assert (image.status, image.disk_format, image.size) == ("active", "raw", size)
        # Our marks outlive the end of Glance's import flow (its last save of the image).
        for _ in iterate_timeout(30, "the import flow to drop its lock", wait=0.1):
            image = glance(cloud).get(record.image_id)
            if IMPORT_LOCK not in image.properties:
                break
        assert image.properties[CONVERTED_FROM] == "qcow2"
        assert image.properties[MANAGED] == "true"
        again = upload_image(cloud, images["qcow2"], build, **FAST)
        assert (again.skipped, again.image_id) == (True, record.image_id)
        assert again.converted_by_cloud == record.converted_by_cloud
        assert_only(lc, NAME, [record.image_id])
    finally:
        glance(cloud).delete(record.image_id)
