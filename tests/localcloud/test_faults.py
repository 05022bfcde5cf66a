"""Faults on demand, per cloud and endpoint, from the admin API or from config."""

from __future__ import annotations

import io
import os
import time

import pytest
import requests
import yaml
from keystoneauth1 import exceptions as ks_exc

from localcloud.personality import PERSONALITY_DIR
from localcloud.testing import LocalCloudError, running_cloud
from tests.localcloud.conftest import (
    OCTET,
    connection,
    image_adapter,
    make_session,
    md5,
    qcow2_bytes,
    upload_segmented,
    vhd_bytes,
    wait_for,
    wait_task,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FILE = r"/image/v2/images/[^/]+/file$"


@pytest.fixture
def glance(lc, sessions):
    adapter = image_adapter(sessions["dreamhost-like"], lc, "dreamhost-like", 2)
    yield adapter
    lc.clear_faults()
    for image in adapter.get("/images").json()["images"]:
        adapter.delete(f"/images/{image['id']}")


def _image(glance, disk_format="raw") -> str:
    return glance.post("/images", json={"name": "f", "disk_format": disk_format,
                                        "container_format": "bare"}).json()["id"]


@pytest.mark.parametrize("status", [500, 503, 413, 409])
def test_status_faults_answer_in_the_service_format(lc, glance, status):
    image_id = _image(glance)
    lc.add_fault("dreamhost-like", kind="status", status=status, method="PUT", path=FILE,
                 message="simulated")
    response = glance.put(f"/images/{image_id}/file", data=os.urandom(50_000), headers=OCTET,
                          raise_exc=False)
    assert response.status_code == status
    assert response.json()["message"] == "simulated"
    assert glance.get(f"/images/{image_id}").json()["status"] == "queued"
    # times defaults to 1: the retry goes through
    glance.put(f"/images/{image_id}/file", data=b"x", headers=OCTET)
    assert glance.get(f"/images/{image_id}").json()["status"] == "active"


def test_a_fault_only_hits_its_cloud(lc, sessions, glance):
    lc.add_fault("dreamhost-like", kind="status", status=503, times=None)
    ovh = image_adapter(sessions["ovh-like"], lc, "ovh-like", 2)
    assert ovh.get("/images").status_code == 200
    assert glance.get("/images", raise_exc=False).status_code == 503


def test_skip_then_fire(lc, glance):
    lc.add_fault("dreamhost-like", kind="status", status=500, method="GET", path="/images$",
                 skip=2, times=1)
    codes = [glance.get("/images", raise_exc=False).status_code for _ in range(4)]
    assert codes == [200, 200, 500, 200]
    fault = lc.faults("dreamhost-like")[0]
    assert fault["seen"] == 3 and fault["fired"] == 1 and fault["exhausted"]


def test_reset_after_n_bytes_kills_the_upload(lc, glance):
    image_id = _image(glance)
    lc.add_fault("dreamhost-like", kind="reset", after_bytes=100_000, method="PUT", path=FILE)
    with pytest.raises(ks_exc.ConnectFailure):
        glance.put(f"/images/{image_id}/file", data=os.urandom(2_000_000), headers=OCTET)
    assert wait_for(lambda: glance.get(f"/images/{image_id}").json()["status"] == "killed")


def test_swiftclient_retries_through_a_reset(lc):
    conn = connection(lc, "ovh-like")
    conn.put_container("resets")
    lc.add_fault("ovh-like", kind="reset", after_bytes=1000, method="PUT", path="/resets/obj$")
    data = os.urandom(50_000)
    conn.put_object("resets", "obj", io.BytesIO(data))      # seekable: swiftclient can retry
    assert conn.get_object("resets", "obj")[1] == data
    assert lc.faults("ovh-like")[0]["fired"] == 1
    conn.delete_object("resets", "obj")
    conn.delete_container("resets")


def test_stall_holds_the_call_until_the_client_gives_up(lc, glance):
    """A stalled call never answers; the hold ends when the client leaves (or at the bound)."""
    lc.add_fault("dreamhost-like", kind="stall", seconds=30, method="GET", path="/images$")
    began = time.monotonic()
    with pytest.raises(ks_exc.ConnectTimeout):
        glance.get("/images", timeout=1)
    assert 1 <= time.monotonic() - began < 5
    assert wait_for(lambda: lc.faults("dreamhost-like")[0]["holding"] == 0, timeout=5)
    assert glance.get("/images").status_code == 200       # times: 1


def test_stall_mid_body_ends_by_the_bound(lc, glance):
    """With ``after_bytes`` the body stops being read; ``seconds`` bounds the hold."""
    image_id = _image(glance)
    lc.add_fault("dreamhost-like", kind="stall", seconds=1, after_bytes=100_000,
                 method="PUT", path=FILE)
    with pytest.raises(ks_exc.ConnectFailure):
        glance.put(f"/images/{image_id}/file", data=os.urandom(2_000_000), headers=OCTET)
    assert lc.faults("dreamhost-like")[0]["holding"] == 0


def test_delay(lc, glance):
    lc.add_fault("dreamhost-like", kind="delay", seconds=0.5, method="GET", path="/images$")
    began = time.monotonic()
    glance.get("/images")
    assert time.monotonic() - began >= 0.5


def test_token_expires_mid_run(lc, glance, sessions):
    token = sessions["dreamhost-like"].get_token()
    lc.add_fault("dreamhost-like", kind="token_expire", method="GET", path="/images$", skip=1)
    url = glance.get_endpoint().rstrip("/") + "/images"
    assert requests.get(url, headers={"X-Auth-Token": token}).status_code == 200
    assert requests.get(url, headers={"X-Auth-Token": token}).status_code == 401
    # keystoneauth re-authenticates on the 401 and the run carries on
    assert glance.get("/images").status_code == 200
    assert sessions["dreamhost-like"].get_token() != token


@pytest.mark.parametrize("state", ["queued", "saving"])
def test_image_stuck(lc, glance, state):
    image_id = _image(glance)
    lc.add_fault("dreamhost-like", kind="stuck", state=state, path=FILE)
    glance.put(f"/images/{image_id}/file", data=os.urandom(1000), headers=OCTET)
    time.sleep(0.3)
    assert glance.get(f"/images/{image_id}").json()["status"] == state


def test_task_fail_and_stuck_task(lc, rackspace, tmp_path):
    data = vhd_bytes(1 << 20)
    upload_segmented(lc, "rackspace-like", tmp_path, "f.vhd", data)
    body = {"type": "import", "input": {"import_from": "staging/f.vhd",
                                        "image_properties": {"name": "f"}}}
    lc.add_fault("rackspace-like", kind="task_fail", message="Image import failed: quota")
    failed = wait_task(rackspace, rackspace.post("/tasks", json=body).json()["id"])
    assert failed["status"] == "failure" and failed["message"] == "Image import failed: quota"
    assert rackspace.get("/images").json()["images"] == []
    lc.add_fault("rackspace-like", kind="stuck", state="queued", path="/tasks$")
    stuck_id = rackspace.post("/tasks", json=body).json()["id"]
    time.sleep(0.5)
    assert rackspace.get(f"/tasks/{stuck_id}").json()["status"] == "processing"
    images = rackspace.get("/images").json()["images"]
    assert [i["status"] for i in images] == ["queued"]
    ok = wait_task(rackspace, rackspace.post("/tasks", json=body).json()["id"])
    assert rackspace.get(f"/images/{ok['result']['image_id']}").json()["checksum"] == md5(data)


def test_glance_direct_import_failure(lc, sessions):
    vexxhost = image_adapter(sessions["vexxhost-like"], lc, "vexxhost-like", 2)
    image_id = vexxhost.post("/images", json={"name": "gd", "disk_format": "qcow2",
                                              "container_format": "bare"}).json()["id"]
    vexxhost.put(f"/images/{image_id}/stage", data=qcow2_bytes(), headers=OCTET)
    lc.add_fault("vexxhost-like", kind="task_fail", path="/import$")
    vexxhost.post(f"/images/{image_id}/import", json={"method": {"name": "glance-direct"}})
    image = wait_for(lambda: (lambda i: i if i["status"] == "queued" else None)(
        vexxhost.get(f"/images/{image_id}").json()))
    assert image["os_glance_failed_import"]
    vexxhost.delete(f"/images/{image_id}")


@pytest.mark.parametrize("spec", [
    {"kind": "explode"},
    {"kind": "status"},
    {"kind": "status", "status": 200},
    {"kind": "stuck", "state": "active"},
    {"kind": "reset", "after_bytes": 1, "path": "("},
    {"kind": "delay", "seconds": 1, "bogus": 1},
    {"kind": "stall", "seconds": 0},
    {"kind": "stall", "seconds": 10_000},      # a stall is bounded: it never leaks
])
def test_bad_fault_specs_are_400(lc, spec):
    with pytest.raises(LocalCloudError, match="400"):
        lc.admin("POST", "/admin/faults", json=spec)


def test_faults_from_config_at_startup(tmp_path):
    faults = [{"cloud": "ovh-like", "kind": "status", "status": 503, "method": "POST",
               "path": "/image/v2/images$", "times": None}]
    with running_cloud(["ovh-like"], tmp_path, faults=faults) as lc:
        glance = image_adapter(make_session(lc, "ovh-like"), lc, "ovh-like", 2)
        for _ in range(2):
            response = glance.post("/images", json={"name": "x"}, raise_exc=False)
            assert response.status_code == 503
        assert lc.faults()[0]["fired"] == 2


def test_a_personality_file_outside_the_package_with_its_own_faults(tmp_path):
    data = yaml.safe_load((PERSONALITY_DIR / "ovh-like.yaml").read_text())
    data.update(name="flaky-like", faults=[{"kind": "status", "status": 503, "times": None,
                                            "method": "POST", "path": "/images$"}])
    path = tmp_path / "flaky-like.yaml"
    path.write_text(yaml.safe_dump(data))
    with running_cloud([str(path)], tmp_path / "data") as lc:
        assert lc.config("flaky-like")["imagefleet"]["profile"] == "flaky-like"
        glance = image_adapter(make_session(lc, "flaky-like"), lc, "flaky-like", 2)
        assert glance.post("/images", json={"name": "x"}, raise_exc=False).status_code == 503
        assert glance.get("/images").status_code == 200
