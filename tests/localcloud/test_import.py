"""Upload mechanisms beyond a direct PUT: Swift + import task, and glance-direct."""

from __future__ import annotations

import os

import pytest

from tests.localcloud.conftest import (
    OCTET,
    image_adapter,
    md5,
    qcow2_bytes,
    upload_segmented,
    vhd_bytes,
    wait_for,
    wait_task,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _task(glance, source: str, **properties) -> dict:
    body = {"type": "import", "input": {"import_from": source, "import_from_format": "vhd",
                                        "image_properties": {"name": "imported",
                                                             **properties}}}
    created = glance.post("/tasks", json=body)
    assert created.status_code == 201 and created.json()["status"] == "pending"
    return created.json()


def test_task_import_from_a_segmented_swift_object(lc, rackspace, tmp_path):
    data = vhd_bytes()
    upload_segmented(lc, "rackspace-like", tmp_path, "image.vhd", data)
    task = wait_task(rackspace, _task(rackspace, "staging/image.vhd")["id"])
    assert task["status"] == "success", task["message"]
    image = rackspace.get(f"/images/{task['result']['image_id']}").json()
    assert image["status"] == "active" and image["checksum"] == md5(data)
    assert image["disk_format"] == "vhd" and image["container_format"] == "ovf"
    assert image["name"] == "imported"
    listed = rackspace.get("/tasks").json()["tasks"]
    assert task["id"] in [t["id"] for t in listed]


def test_a_property_beside_the_name_fails_the_task(lc, rackspace, tmp_path):
    """Rackspace Cloud Images: name is the only property image_properties may hold."""
    upload_segmented(lc, "rackspace-like", tmp_path, "image.vhd", vhd_bytes())
    task = wait_task(rackspace, _task(rackspace, "staging/image.vhd", os_distro="centos",
                                      disk_format="vhd")["id"])
    assert task["status"] == "failure"
    assert task["message"] == ("Image import failed: name is the only property allowed in "
                               "image_properties, not disk_format, os_distro")
    assert rackspace.get("/images").json()["images"] == []


def test_direct_upload_is_refused_on_a_task_only_cloud(rackspace):
    image = rackspace.post("/images", json={"name": "direct", "disk_format": "vhd",
                                            "container_format": "ovf"}).json()
    response = rackspace.put(f"/images/{image['id']}/file", data=vhd_bytes(1024),
                             headers=OCTET, raise_exc=False)
    assert response.status_code == 403 and "import task" in response.json()["message"]


def test_qcow2_content_fails_the_import(lc, rackspace, tmp_path):
    upload_segmented(lc, "rackspace-like", tmp_path, "wrong.img", qcow2_bytes(2 << 20))
    task = wait_task(rackspace, _task(rackspace, "staging/wrong.img")["id"])
    assert task["status"] == "failure" and "does not match" in task["message"]
    assert rackspace.get("/images").json()["images"] == []


def test_missing_object_fails_the_task(rackspace):
    task = wait_task(rackspace, _task(rackspace, "staging/nothing-here")["id"])
    assert task["status"] == "failure" and "not found" in task["message"]


def test_tasks_are_refused_where_upload_is_not_task(lc, sessions):
    ovh = image_adapter(sessions["ovh-like"], lc, "ovh-like", 2)
    response = ovh.post("/tasks", json={"type": "import", "input": {"import_from": "a/b"}},
                        raise_exc=False)
    assert response.status_code == 403


@pytest.fixture
def vexxhost(lc, sessions):
    glance = image_adapter(sessions["vexxhost-like"], lc, "vexxhost-like", 2)
    yield glance
    for image in glance.get("/images").json()["images"]:
        glance.delete(f"/images/{image['id']}")


def test_glance_direct_stage_and_import(vexxhost):
    methods = vexxhost.get("/info/import").json()["import-methods"]["value"]
    assert methods == ["glance-direct"]
    created = vexxhost.post("/images", json={"name": "gd", "disk_format": "qcow2",
                                             "container_format": "bare"})
    assert created.headers["OpenStack-image-import-methods"] == "glance-direct"
    image_id = created.json()["id"]
    data = qcow2_bytes(200_000)
    assert vexxhost.put(f"/images/{image_id}/stage", data=data, headers=OCTET).status_code == 204
    assert vexxhost.get(f"/images/{image_id}").json()["status"] == "uploading"
    accepted = vexxhost.post(f"/images/{image_id}/import",
                             json={"method": {"name": "glance-direct"}})
    assert accepted.status_code == 202
    image = wait_for(lambda: (lambda i: i if i["status"] == "active" else None)(
        vexxhost.get(f"/images/{image_id}").json()))
    assert image["checksum"] == md5(data) and image["size"] == len(data)


def test_import_needs_staging_and_a_known_method(vexxhost):
    image_id = vexxhost.post("/images", json={"name": "x", "disk_format": "raw",
                                              "container_format": "bare"}).json()["id"]
    early = vexxhost.post(f"/images/{image_id}/import", raise_exc=False,
                          json={"method": {"name": "glance-direct"}})
    assert early.status_code == 409
    unknown = vexxhost.post(f"/images/{image_id}/import", raise_exc=False,
                            json={"method": {"name": "web-download", "uri": "http://x"}})
    assert unknown.status_code == 400


def test_no_interoperable_import_without_the_flag(lc, sessions):
    dreamhost = image_adapter(sessions["dreamhost-like"], lc, "dreamhost-like", 2)
    assert dreamhost.get("/info/import", raise_exc=False).status_code == 404
    created = dreamhost.post("/images", json={"name": "x", "disk_format": "raw",
                                              "container_format": "bare"})
    assert "OpenStack-image-import-methods" not in created.headers
    image_id = created.json()["id"]
    staged = dreamhost.put(f"/images/{image_id}/stage", data=os.urandom(10), headers=OCTET,
                           raise_exc=False)
    assert staged.status_code == 404
    dreamhost.delete(f"/images/{image_id}")


# --- a single-store Ceph cloud that converts on import (docs/vendor-behaviour.md) -------
CONVERTING = {"stores": "single", "convert_to": "raw", "task_list": True}


@pytest.fixture(scope="module")
def converting(tmp_path_factory):
    """Glance v2 of a vexxhost-like cloud with ``image_import`` CONVERTING."""
    from localcloud.testing import personality_file, running_cloud
    from tests.localcloud.conftest import make_session
    d = tmp_path_factory.mktemp("converting")
    with running_cloud([personality_file(d, "vexxhost-like", image_import=CONVERTING)],
                       d / "data") as cloud:
        yield cloud, image_adapter(make_session(cloud, "vexxhost-like"), cloud,
                                   "vexxhost-like", 2)


def _stage_and_import(glance, data: bytes) -> str:
    image_id = glance.post("/images", json={"name": "gd", "disk_format": "qcow2",
                                            "container_format": "bare"}).json()["id"]
    glance.put(f"/images/{image_id}/stage", data=data, headers=OCTET)
    glance.post(f"/images/{image_id}/import", json={"method": {"name": "glance-direct"}})
    return image_id


def _finished_task(glance, image_id: str) -> dict:
    return wait_for(lambda: next((t for t in glance.get(f"/images/{image_id}/tasks").json()[
        "tasks"] if t["status"] in ("success", "failure")), None))


def test_single_store_failed_import_is_only_in_the_image_task_list(converting):
    lc, glance = converting
    lc.add_fault("vexxhost-like", kind="task_fail", message="Image import failed: no space")
    image_id = _stage_and_import(glance, qcow2_bytes())
    task = _finished_task(glance, image_id)
    assert (task["status"], task["message"]) == ("failure", "Image import failed: no space")
    assert task["type"] == "api_image_import" and task["image_id"] == image_id
    image = glance.get(f"/images/{image_id}").json()
    assert image["status"] == "queued" and "os_glance_failed_import" not in image
    glance.delete(f"/images/{image_id}")


def test_conversion_on_import_rewrites_format_size_and_checksums(converting, tmp_path):
    import subprocess
    lc, glance = converting
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(1 << 20))
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True)
    image_id = _stage_and_import(glance, qcow2.read_bytes())
    assert _finished_task(glance, image_id)["status"] == "success"
    image = glance.get(f"/images/{image_id}").json()
    assert (image["status"], image["disk_format"]) == ("active", "raw")
    assert image["size"] == 1 << 20 and image["checksum"] == md5(raw.read_bytes())
    assert glance.get(f"/images/{image_id}/file").content == raw.read_bytes()
    glance.delete(f"/images/{image_id}")
