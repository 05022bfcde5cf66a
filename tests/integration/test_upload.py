"""upload_image against the local cloud: each vendor shape, each fault, and reruns.

Every test checks what a user would: the image in Glance is active, has the
right disk_format and checksum, and the local cloud's resource list shows
nothing else left behind (no half image, no staged object, no container).
"""

from __future__ import annotations

import _thread
import dataclasses
import hashlib
import itertools
import logging
import os
import subprocess
import time

import pytest

from pipeline.cloud import staging
from pipeline.cloud.connection import Connection
from pipeline.cloud.discovery import discover_image_api
from pipeline.cloud.glance import JSON_PATCH
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.session import make_session
from pipeline.cloud.upload import upload_image
from pipeline.core import errors
from pipeline.core.formats import QEMU_FORMAT, choose_disk_format
from pipeline.core.progress import Progress
from pipeline.settings.clouds import Cloud, load_clouds
from pipeline.settings.config import Profile, load_profiles
from pipeline.settings.profile import MetadataSection
from tests.conftest import REPO
from tests.pipeline_run import local_cloud

MiB = 1024 * 1024
SHAPES = ["hp-like", "rackspace-like", "dreamhost-like", "vexxhost-like", "ovh-like", "auro-like"]
MECHANISM = {"hp-like": "glance-v1-put", "rackspace-like": "swift-task-import",
             "dreamhost-like": "glance-v2-put", "vexxhost-like": "glance-v2-put",
             "ovh-like": "glance-v2-put", "auro-like": "glance-v2-put"}
API = {"hp-like": "1", "rackspace-like": "2", "dreamhost-like": "2", "vexxhost-like": "2",
       "ovh-like": "2", "auro-like": "2"}
FAST = {"poll_interval": 0.05, "retry_wait": 0.05}
_builds = itertools.count(1)
pytestmark = pytest.mark.usefixtures("no_faults_left")


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, SHAPES)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A 24 MiB raw image (random data, so no format shrinks it) and its conversions."""
    d = tmp_path_factory.mktemp("images")
    raw = d / "disk.raw"
    raw.write_bytes(os.urandom(24 * MiB))
    paths = {"raw": raw}
    for fmt in ("qcow2", "vhd"):
        paths[fmt] = d / f"disk.{fmt}"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", QEMU_FORMAT[fmt], str(raw),
                        str(paths[fmt])], check=True)
    return paths


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(REPO / "config" / "vendors")


def make_cloud(lc, profiles, name, *, profile_changes=None, auth_changes=None):
    config = load_clouds(lc.clouds_yaml)[name]
    if auth_changes:
        config.config["auth"] = {**config.config["auth"], **auth_changes}
    profile = profiles[name]
    if profile_changes:
        data = {**profile.data, "image": {**profile.data["image"], **profile_changes}}
        profile = Profile(name=profile.name, data=data, path=profile.path)
    return Cloud(config=config, profile=profile,
                 disk_format=choose_disk_format(profile.disk_formats))


def new_build():
    return BuildInfo(build_id=f"t{next(_builds)}-{os.getpid()}", digest="sha256:" + "ab" * 32,
                     image_name="imagefleet-test")


def glance(cloud):
    return Connection(cloud).glance


def assert_only(lc, cloud_name, image_ids):
    """The cloud holds exactly these images and no Swift object, segment or container."""
    left = lc.leftovers(cloud_name)
    assert sorted(i["id"] for i in left.pop("images", [])) == sorted(image_ids)
    assert left == {}


@pytest.fixture
def cleanup(lc, profiles):
    """Delete the images a test made, so the next test starts from an empty cloud."""
    made = []
    yield made
    for cloud, image_id in made:
        glance(cloud).delete(image_id)


def upload(cloud, images, build, cleanup, **kwargs):
    record = upload_image(cloud, images[cloud.disk_format], build, **{**FAST, **kwargs})
    cleanup.append((cloud, record.image_id))
    return record


# --- each vendor shape ----------------------------------------------------------

@pytest.mark.parametrize("name", SHAPES)
def test_right_format_by_right_mechanism(lc, profiles, images, cleanup, name):
    cloud = make_cloud(lc, profiles, name)
    build = new_build()
    record = upload(cloud, images, build, cleanup)
    data = images[cloud.disk_format].read_bytes()
    assert record.mechanism == MECHANISM[name]
    assert record.api_version == API[name]
    assert record.bytes == record.size == len(data)
    image = glance(cloud).get(record.image_id)
    assert image.status == "active"
    assert image.name == build.cloud_image_name
    assert image.disk_format == cloud.disk_format
    assert image.container_format == cloud.profile.image.container_format
    assert image.checksum == hashlib.md5(data).hexdigest() == record.checksum
    assert image.properties["imagefleet_sha256"] == hashlib.sha256(data).hexdigest()
    assert image.properties["imagefleet_build"] == build.build_id
    assert image.properties["imagefleet_managed"] == "true"
    assert record.to_dict()["image_id"] == image.id
    assert_only(lc, name, [record.image_id])


def test_rackspace_task_names_the_image_only_and_properties_follow(lc, profiles, images,
                                                                   cleanup):
    """The task carries only the name (any other property fails it there); ours, the vendor
    data's and the visibility are set once the image is active."""
    cloud = make_cloud(lc, profiles, "rackspace-like", profile_changes={"visibility": "shared"})
    record = upload(cloud, images, new_build(), cleanup)
    conn = Connection(cloud)
    tasks = conn.glance.call("GET", "tasks").json()["tasks"]
    inputs = [conn.glance.call("GET", f"tasks/{t['id']}").json()["input"] for t in tasks]
    assert {"name": record.image_name} in [i["image_properties"] for i in inputs]
    image = conn.image_api.adapter.get(f"images/{record.image_id}").json()
    assert (image["vm_mode"], image["xenapi_use_agent"]) == ("hvm", "False")
    assert image["visibility"] == "shared" and image["imagefleet_managed"] == "true"


def test_an_unmarked_import_of_a_killed_run_is_adopted_not_uploaded_again(lc, profiles,
                                                                           images, cleanup):
    """Killed after a name-only task made the image active but before the PATCH: the rerun
    marks that image (same name, same content) instead of importing a second one."""
    cloud = make_cloud(lc, profiles, "rackspace-like")
    build = new_build()
    first = upload(cloud, images, build, cleanup)
    conn = Connection(cloud)
    doc = conn.image_api.adapter.get(f"images/{first.image_id}").json()
    ours = [k for k in doc if k.startswith("imagefleet_")]
    conn.glance.call("PATCH", f"images/{first.image_id}",
                     headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                     json=[{"op": "remove", "path": f"/{k}"} for k in ours])
    again = upload_image(cloud, images[cloud.disk_format], build, **FAST)
    assert again.skipped and again.image_id == first.image_id and again.bytes == 0
    doc = conn.image_api.adapter.get(f"images/{first.image_id}").json()
    assert doc["imagefleet_managed"] == "true"
    assert_only(lc, cloud.name, [first.image_id])


@pytest.mark.parametrize("name, expected", [("hp-like", "1"), ("auro-like", "2"),
                                            ("rackspace-like", "2"), ("vexxhost-like", "2")])
def test_discovery_without_a_pin(lc, profiles, name, expected):
    """keystoneauth's discovery alone finds the version (versioned and unversioned catalogs)."""
    cloud = make_cloud(lc, profiles, name)
    api = discover_image_api(make_session(cloud.config), cloud.config, pin=None)
    assert api.version == expected
    assert ("glance-direct" in api.import_methods) == (name == "vexxhost-like")


def test_rerun_uploads_zero_bytes(lc, profiles, images, cleanup):
    cloud = make_cloud(lc, profiles, "dreamhost-like")
    build = new_build()
    first = upload(cloud, images, build, cleanup)
    began = time.monotonic()
    again = upload_image(cloud, images[cloud.disk_format], build, **FAST)
    assert time.monotonic() - began < 5
    assert (again.skipped, again.bytes, again.image_id) == (True, 0, first.image_id)
    assert_only(lc, "dreamhost-like", [first.image_id])


def test_glance_direct_when_the_profile_asks(lc, profiles, images, cleanup):
    cloud = make_cloud(lc, profiles, "vexxhost-like",
                       profile_changes={"upload": ["glance-direct", "put"]})
    record = upload(cloud, images, new_build(), cleanup)
    assert record.mechanism == "glance-direct"
    image = glance(cloud).get(record.image_id)
    assert image.status == "active" and image.checksum == record.checksum
    assert_only(lc, "vexxhost-like", [record.image_id])


@pytest.mark.parametrize("name, upload_by", [
    ("hp-like", None), ("dreamhost-like", None), ("rackspace-like", None),
    ("vexxhost-like", ["glance-direct"])])
def test_typed_metadata_and_visibility_on_every_mechanism(lc, profiles, images, name,
                                                          upload_by):
    """pipeline.yaml's image.metadata under the profile's, with Glance's types on v2."""
    changes = {"visibility": "public", "properties": {"min_disk": 2},   # typed, under properties
               "metadata": {"min_ram": 1024, "hw_disk_bus": "virtio"}}
    cloud = make_cloud(lc, profiles, name,
                       profile_changes={**changes, **({"upload": upload_by} if upload_by else {})})
    metadata = MetadataSection.from_dict({
        "min_ram": 512, "protected": True, "tags": ["debian", "lts"], "os_distro": "debian",
        "os_version": 12, "hw_disk_bus": "scsi", "hw_qemu_guest_agent": True})
    record = upload_image(cloud, images[cloud.disk_format], new_build(), metadata=metadata,
                          **FAST)
    g = glance(cloud)
    try:
        if g.version == "1":
            shown = {k.lower(): v for k, v in
                     g.call("HEAD", f"images/{record.image_id}").headers.items()}
            assert shown["x-image-meta-min-disk"] == "2"
            assert shown["x-image-meta-min-ram"] == "1024"
            assert shown["x-image-meta-protected"] == "True"
            assert shown["x-image-meta-is-public"] == "True"
            props = {k[len("x-image-meta-property-"):]: v for k, v in shown.items()
                     if k.startswith("x-image-meta-property-")}
        else:
            props = g.call("GET", f"images/{record.image_id}").json()
            assert (props["min_disk"], props["min_ram"]) == (2, 1024)        # integers
            assert props["protected"] is True and props["visibility"] == "public"
            assert props["tags"] == ["debian", "lts"]
        assert props["os_distro"] == "debian" and props["os_version"] == "12"
        assert props["hw_disk_bus"] == "virtio" and props["hw_qemu_guest_agent"] == "true"
        with pytest.raises(errors.Forbidden):                        # protected: 403
            g.delete(record.image_id)
    finally:
        if g.version == "1":
            g.call("PUT", f"images/{record.image_id}", headers={
                "x-image-meta-protected": "False", "x-glance-registry-purge-props": "false"})
        else:
            g.call("PATCH", f"images/{record.image_id}", headers=JSON_PATCH,
                   json=[{"op": "replace", "path": "/protected", "value": False}])
        g.delete(record.image_id)
    assert_only(lc, name, [])


def test_large_file_goes_as_static_large_object(lc, profiles, images, cleanup, monkeypatch,
                                                caplog):
    """Beyond the cluster's max_file_size the object is staged in SLO segments."""
    info = {"swift": {"max_file_size": 5 * MiB},
            "slo": {"max_manifest_segments": 1000, "min_segment_size": 1}}
    monkeypatch.setattr(staging.SwiftStaging, "info", lambda self, swift: info)
    cloud = make_cloud(lc, profiles, "rackspace-like")
    with caplog.at_level(logging.INFO, logger="pipeline.cloud.staging"):
        record = upload(cloud, images, new_build(), cleanup)
    assert "as 5 segments of 5242880 bytes" in caplog.text
    assert glance(cloud).get(record.image_id).checksum == record.checksum
    assert_only(lc, "rackspace-like", [record.image_id])


# --- faults ---------------------------------------------------------------------

def test_503_then_success_is_retried(lc, profiles, images, cleanup):
    lc.add_fault("dreamhost-like", kind="status", status=503, method="PUT", path="/file$")
    cloud = make_cloud(lc, profiles, "dreamhost-like")
    record = upload(cloud, images, new_build(), cleanup)
    assert record.attempts == 2
    assert lc.faults("dreamhost-like")[0]["fired"] == 1
    assert_only(lc, "dreamhost-like", [record.image_id])


def test_503_on_swift_is_retried(lc, profiles, images, cleanup):
    lc.add_fault("rackspace-like", kind="status", status=503, method="PUT",
                 service="object-store", path="/imagefleet-staging/")
    cloud = make_cloud(lc, profiles, "rackspace-like")
    record = upload(cloud, images, new_build(), cleanup)
    assert record.attempts == 2
    assert_only(lc, "rackspace-like", [record.image_id])


@pytest.mark.parametrize("name, method, path", [("ovh-like", "PUT", "/file$"),
                                                ("hp-like", "POST", "/v1/images$")])
def test_reset_mid_upload_starts_over_without_duplicates(lc, profiles, images, cleanup,
                                                          name, method, path):
    lc.add_fault(name, kind="reset", after_bytes=2 * MiB, method=method, path=path)
    cloud = make_cloud(lc, profiles, name)
    build = new_build()
    record = upload(cloud, images, build, cleanup)
    assert record.attempts == 2
    assert lc.faults(name)[0]["fired"] == 1
    assert [i.id for i in glance(cloud).find(build.cloud_image_name)] == [record.image_id]
    assert_only(lc, name, [record.image_id])


def test_task_failure_is_clear_and_deletes_the_object(lc, profiles, images):
    lc.add_fault("rackspace-like", kind="task_fail",
                 message="Image import failed: the VHD footer is damaged")
    cloud = make_cloud(lc, profiles, "rackspace-like")
    with pytest.raises(errors.UploadError) as info:
        upload_image(cloud, images["vhd"], new_build(), **FAST)
    assert str(info.value).startswith("rackspace-like: upload: import task ")
    assert str(info.value).endswith("failed: Image import failed: the VHD footer is damaged")
    assert_only(lc, "rackspace-like", [])


def test_image_stuck_in_saving_times_out_and_is_deleted(lc, profiles, images):
    lc.add_fault("ovh-like", kind="stuck", state="saving", method="PUT", path="/file$")
    cloud = make_cloud(lc, profiles, "ovh-like", profile_changes={"active_timeout": 1})
    began = time.monotonic()
    with pytest.raises(errors.WaitTimeout, match="still saving after 1 s"):
        upload_image(cloud, images["qcow2"], new_build(), **FAST)
    assert time.monotonic() - began < 10
    assert_only(lc, "ovh-like", [])


def test_bad_credentials_one_line_no_retry_storm(lc, profiles, images):
    counter = lc.add_fault("dreamhost-like", kind="delay", seconds=0, path="/tokens$",
                           times=None)
    cloud = make_cloud(lc, profiles, "dreamhost-like", auth_changes={"password": "wrong"})
    with pytest.raises(errors.Unauthorized) as info:
        upload_image(cloud, images["raw"], new_build(), **FAST)
    assert str(info.value) == "dreamhost-like: auth: Keystone rejected the credentials (401)"
    seen = next(f for f in lc.faults("dreamhost-like") if f["id"] == counter["id"])["seen"]
    assert seen == 1
    assert_only(lc, "dreamhost-like", [])


def test_expired_token_mid_upload_reauthenticates_once(lc, profiles, images, cleanup):
    lc.add_fault("auro-like", kind="token_expire", method="PUT", path="/file$")
    cloud = make_cloud(lc, profiles, "auro-like")
    record = upload(cloud, images, new_build(), cleanup)
    assert record.attempts == 2
    assert_only(lc, "auro-like", [record.image_id])


@pytest.mark.parametrize("name, method, path", [("dreamhost-like", "PUT", "/file$"),
                                                ("hp-like", "POST", "/v1/images$")])
def test_413_fails_at_once(lc, profiles, images, name, method, path):
    lc.add_fault(name, kind="status", status=413, method=method, path=path, times=None,
                 message="Image exceeds the storage quota")
    cloud = make_cloud(lc, profiles, name)
    with pytest.raises(errors.RequestTooLarge) as info:
        upload_image(cloud, images[cloud.disk_format], new_build(), **FAST)
    assert str(info.value) == (f"{name}: upload: Glance v{API[name]} returned 413 "
                               "(Image exceeds the storage quota)")
    assert lc.faults(name)[0]["fired"] == 1
    assert_only(lc, name, [])


@pytest.mark.parametrize("name", ["vexxhost-like", "rackspace-like"])
def test_interrupted_upload_leaves_nothing(lc, profiles, images, name):
    class Interrupting(Progress):
        """Ctrl-C once 4 MiB are out: the signal lands in the main thread, as a real one."""

        def update(self, n):
            super().update(n)
            if self.done >= 4 * MiB and not getattr(self, "fired", False):
                self.fired = True
                _thread.interrupt_main()

    cloud = make_cloud(lc, profiles, name)
    with pytest.raises(KeyboardInterrupt):
        upload_image(cloud, images[cloud.disk_format], new_build(),
                     progress=lambda total, label: Interrupting(total, label, tty=False), **FAST)
    assert_only(lc, name, [])


def test_secrets_stay_out_of_the_log(lc, profiles, images, cleanup, caplog):
    cloud = make_cloud(lc, profiles, "rackspace-like")
    conn = Connection(cloud)
    session = conn.session
    with caplog.at_level(logging.DEBUG):
        upload(cloud, images, new_build(), cleanup, connection=conn)
    assert "REQ: curl" in caplog.text
    assert cloud.config.auth["password"] not in caplog.text
    assert session.get_token() not in caplog.text
    assert session.get_token()[:8] not in caplog.text


def test_record_is_json_ready(lc, profiles, images, cleanup):
    import json
    cloud = make_cloud(lc, profiles, "ovh-like")
    record = upload(cloud, images, new_build(), cleanup)
    data = json.loads(json.dumps(record.to_dict()))
    assert set(data) == {f.name for f in dataclasses.fields(record)}
    assert data["mechanism"] == "glance-v2-put" and data["seconds"] >= 0


def test_failed_interoperable_import_is_clear_and_leaves_nothing(lc, profiles, images):
    lc.add_fault("vexxhost-like", kind="task_fail", method="POST", path="/import$")
    cloud = make_cloud(lc, profiles, "vexxhost-like", profile_changes={"upload": ["glance-direct"]})
    with pytest.raises(errors.UploadError,
                       match=r"import of image \S+ failed in local: no reason given"):
        upload_image(cloud, images["qcow2"], new_build(), **FAST)
    assert_only(lc, "vexxhost-like", [])
