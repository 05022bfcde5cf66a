"""Accounting: the admin API lists every image, container, object and segment per cloud."""

from __future__ import annotations

import io
import json
import os

import pytest

from tests.localcloud.conftest import connection, image_adapter

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_everything_made_is_listed_until_deleted(lc, sessions):
    cloud = "auro-like"
    assert lc.leftovers(cloud) == {}
    glance = image_adapter(sessions[cloud], lc, cloud, 2)
    image = glance.post("/images", json={"name": "acct", "disk_format": "qcow2",
                                         "container_format": "bare"}).json()
    conn = connection(lc, cloud)
    conn.put_container("plain")
    conn.put_object("plain", "obj", b"12345")
    conn.put_container("segs")
    conn.put_object("segs", "s1", b"a" * 10)
    conn.put_object("segs", "s2", b"b" * 10)
    manifest = [{"path": "/segs/s1", "etag": None, "size_bytes": 10},
                {"path": "/segs/s2", "etag": None, "size_bytes": 10}]
    conn.put_object("plain", "big", io.BytesIO(json.dumps(manifest).encode()),
                    query_string="multipart-manifest=put")

    found = lc.resources(cloud)
    assert [(i["id"], i["status"]) for i in found["images"]] == [(image["id"], "queued")]
    assert {c["name"] for c in found["containers"]} == {"plain", "segs"}
    assert {(o["name"], o["large_object"]) for o in found["objects"]} == {
        ("obj", None), ("big", "slo")}
    assert {s["name"] for s in found["segments"]} == {"s1", "s2"}
    everywhere = lc.admin("GET", "/admin/resources")["clouds"]
    assert set(everywhere) == set(lc.clouds) and everywhere[cloud] == found

    glance.delete(f"/images/{image['id']}")
    conn.delete_object("plain", "big", query_string="multipart-manifest=delete")
    conn.delete_object("plain", "obj")
    conn.delete_container("plain")
    conn.delete_container("segs")
    assert lc.leftovers(cloud) == {}


def test_admin_lists_clouds_with_credentials(lc):
    clouds = lc.admin("GET", "/admin/clouds")["clouds"]
    assert set(clouds) == set(lc.clouds)
    hp = lc.admin("GET", "/admin/clouds/hp-like")
    assert hp["auth_url"].endswith("/identity/v3") and hp["credentials"]["password"]
    assert hp["admin_url"] == lc.admin_url + "/admin/clouds/hp-like"


def test_tokens_are_not_resources(lc, sessions):
    sessions["ovh-like"].get_token()
    assert "tokens" not in lc.resources("ovh-like")


def test_object_bytes_live_in_files_not_in_memory(lc):
    conn = connection(lc, "ovh-like")
    conn.put_container("bytes")
    data = os.urandom(2000)
    conn.put_object("bytes", "o", data)
    blobs = [p for p in (lc.data_dir / "blobs").iterdir() if p.read_bytes() == data]
    assert len(blobs) == 1
    conn.delete_object("bytes", "o")
    conn.delete_container("bytes")
    assert not blobs[0].exists()
