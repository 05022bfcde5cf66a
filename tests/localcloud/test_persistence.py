"""A restart of the local cloud loses nothing: state in SQLite, bytes in files, same ports."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from keystoneauth1 import exceptions as ks_exc

from localcloud.testing import LocalCloudError, running_cloud, start
from tests.localcloud.conftest import (
    OCTET,
    connection,
    image_adapter,
    make_session,
    md5,
    qcow2_bytes,
    wait_for,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_restart_keeps_images_objects_credentials_and_ports(tmp_path):
    data = qcow2_bytes(300_000)
    with running_cloud(["ovh-like", "hp-like"], tmp_path) as first:
        clouds_yaml = first.clouds_yaml.read_text()
        glance = image_adapter(make_session(first, "ovh-like"), first, "ovh-like", 2)
        image_id = glance.post("/images", json={"name": "keep", "disk_format": "qcow2",
                                                "container_format": "bare"}).json()["id"]
        glance.put(f"/images/{image_id}/file", data=data, headers=OCTET)
        conn = connection(first, "hp-like")
        conn.put_container("keep")
        conn.put_object("keep", "obj", b"persisted", headers={"X-Object-Meta-A": "1"})

    with running_cloud(["ovh-like", "hp-like"], tmp_path) as second:
        assert second.clouds_yaml.read_text() == clouds_yaml
        glance = image_adapter(make_session(second, "ovh-like"), second, "ovh-like", 2)
        image = glance.get(f"/images/{image_id}").json()
        assert image["status"] == "active" and image["checksum"] == md5(data)
        assert glance.get(f"/images/{image_id}/file").content == data
        headers, body = connection(second, "hp-like").get_object("keep", "obj")
        assert body == b"persisted" and headers["x-object-meta-a"] == "1"
        assert len(second.resources("hp-like")["objects"]) == 1


def test_a_stuck_image_stays_stuck_across_a_restart(tmp_path):
    with running_cloud(["dreamhost-like"], tmp_path) as first:
        glance = image_adapter(make_session(first, "dreamhost-like"), first,
                               "dreamhost-like", 2)
        image_id = glance.post("/images", json={"name": "cut", "disk_format": "raw",
                                                "container_format": "bare"}).json()["id"]
        first.add_fault("dreamhost-like", kind="stuck", state="saving")
        glance.put(f"/images/{image_id}/file", data=b"x" * 1000, headers=OCTET)
    with running_cloud(["dreamhost-like"], tmp_path) as second:
        glance = image_adapter(make_session(second, "dreamhost-like"), second,
                               "dreamhost-like", 2)
        assert glance.get(f"/images/{image_id}").json()["status"] == "saving"


def test_an_upload_cut_by_a_stop_ends_killed(tmp_path):
    with running_cloud(["dreamhost-like"], tmp_path) as first:
        glance = image_adapter(make_session(first, "dreamhost-like"), first,
                               "dreamhost-like", 2)
        image_id = glance.post("/images", json={"name": "cut", "disk_format": "raw",
                                                "container_format": "bare"}).json()["id"]

        def slow_body():
            for _ in range(100):
                yield b"x" * 65536
                time.sleep(0.1)

        def send():
            with contextlib.suppress(ks_exc.ConnectFailure):     # the stop cuts it
                glance.put(f"/images/{image_id}/file", data=slow_body(), headers=OCTET)

        upload = threading.Thread(target=send, daemon=True)
        upload.start()
        wait_for(lambda: glance.get(f"/images/{image_id}").json()["status"] == "saving")
    upload.join(timeout=15)
    with running_cloud(["dreamhost-like"], tmp_path) as second:
        glance = image_adapter(make_session(second, "dreamhost-like"), second,
                               "dreamhost-like", 2)
        assert glance.get(f"/images/{image_id}").json()["status"] == "killed"
        assert not list((tmp_path / "tmp").iterdir())


def test_one_local_cloud_per_data_dir(tmp_path):
    with running_cloud(["ovh-like"], tmp_path):
        with pytest.raises(LocalCloudError, match="in use by another local cloud"):
            start(["ovh-like"], tmp_path)


def test_a_killed_cloud_gets_its_addresses_back_after_another_one_started(tmp_path):
    """A cloud down for a moment keeps its address slice: one started meanwhile (another
    test, another pytest worker) takes a slice no existing data dir has used."""
    first = start(["hp-like"], tmp_path / "first")
    first_urls = first.clouds_yaml.read_text()
    first.process.kill()                     # no clean stop: its slot locks just go
    first.process.wait()
    with running_cloud(["hp-like"], tmp_path / "second") as second:
        assert second.clouds_yaml.read_text() != first_urls
        with running_cloud(["hp-like"], tmp_path / "first") as again:
            assert again.clouds_yaml.read_text() == first_urls
