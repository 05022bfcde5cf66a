"""Glance v2 tasks: POST /v2/tasks type import, from an http URL (a Swift temp URL)."""

from __future__ import annotations

from tests.conformance.conftest import md5, wait_for, wait_image
from tests.conformance.test_object import put_object, temp_url


def import_task(image_api, import_from: str, name: str) -> dict:
    resp = image_api.post("/tasks", json={"type": "import", "input": {
        "import_from": import_from, "import_from_format": "qcow2",
        "image_properties": {"name": name, "disk_format": "qcow2",
                             "container_format": "bare"}}})
    assert resp.status_code == 201, resp.text
    task = resp.json()
    assert task["type"] == "import" and task["status"] == "pending"
    assert task["self"] == f"/v2/tasks/{task['id']}"
    return task


def finished(image_api, task_id: str) -> dict:
    def done():
        task = image_api.get(f"/tasks/{task_id}").json()
        return task if task["status"] in ("success", "failure") else None
    return wait_for(done, 60, f"task {task_id} to finish")


def test_task_import_from_http_url(image_api, swift, containers, images, unique, qcow2_data):
    put_object(swift, containers, unique, "disk.qcow2", qcow2_data)
    task = import_task(image_api, temp_url(swift, f"{unique}/disk.qcow2"), unique)
    done = finished(image_api, task["id"])
    assert done["status"] == "success", done["message"]
    image_id = done["result"]["image_id"]
    images.append(image_id)
    active = wait_image(image_api, image_id)
    assert active["name"] == unique
    assert active["checksum"] == md5(qcow2_data)
    assert active["size"] == len(qcow2_data)
    listed = image_api.get("/tasks?type=import").json()["tasks"]
    assert task["id"] in {t["id"] for t in listed}


def test_task_import_refuses_swift_path(image_api, swift, containers, images, unique,
                                        qcow2_data):
    """Upstream's task import reads URLs only: 'container/object' fails the task."""
    put_object(swift, containers, unique, "disk.qcow2", qcow2_data)
    task = import_task(image_api, f"{unique}/disk.qcow2", unique)
    done = finished(image_api, task["id"])
    if done.get("result") and done["result"].get("image_id"):
        images.append(done["result"]["image_id"])
    assert done["status"] == "failure"
    assert done["message"]


def test_tasks_api_is_admin_only(target, unique):
    """A project member may not create tasks: the pipeline's task mechanism needs an admin."""
    member = target.session(target.demo_cloud)
    resp = target.image(member).post("/tasks", json={"type": "import", "input": {
        "import_from": "http://127.0.0.1:9/none", "import_from_format": "qcow2",
        "image_properties": {"name": unique, "disk_format": "qcow2",
                             "container_format": "bare"}}})
    assert resp.status_code == 403, resp.text
