"""Glance v2: version discovery, the image lifecycle, properties, filters, errors."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conformance.conftest import (
    OCTET,
    PATCH_TYPE,
    create_image,
    md5,
    sha512,
    wait_image,
)

JSON = {"Accept": "application/json"}


def test_image_root_document(target, sess):
    """The unversioned catalog entry answers 300 with Glance's version list."""
    root = sess.get_endpoint(service_type="image", interface="public")
    resp = requests.get(root.rstrip("/") + "/", timeout=30)
    assert resp.status_code == 300, resp.text
    versions = resp.json()["versions"]
    ids = [v["id"] for v in versions]
    assert all(re.fullmatch(r"v2\.\d+", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    current = [v["id"] for v in versions if v["status"] == "CURRENT"]
    newest = max(ids, key=lambda i: int(i.split(".")[1]))
    assert current == [newest]
    # interoperable import needs v2.6 or later
    assert int(newest.split(".")[1]) >= 6
    for v in versions:
        assert v["status"] in ("CURRENT", "SUPPORTED", "DEPRECATED")
        assert [link["href"].rstrip("/").rsplit("/", 1)[-1] for link in v["links"]] == ["v2"]


def test_versioned_endpoint(image_api):
    """keystoneauth discovery lands on .../v2, where the image list lives."""
    assert image_api.get_endpoint().rstrip("/").endswith("/v2")
    resp = image_api.get("/images")
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["images"], list)
    assert body["first"].startswith("/v2/images")
    assert body["schema"] == "/v2/schemas/images"


def test_create_upload_active(image_api, images, qcow2_data, unique):
    created = create_image(image_api, images, unique, min_disk=1, min_ram=64,
                           tags=["conformance"])
    assert created["status"] == "queued"
    assert created["name"] == unique
    assert (created["disk_format"], created["container_format"]) == ("qcow2", "bare")
    assert created["visibility"] == "shared"
    assert created["protected"] is False and created["os_hidden"] is False
    assert created["checksum"] is None and created["size"] is None
    assert created["tags"] == ["conformance"]
    assert created["self"] == f"/v2/images/{created['id']}"
    assert created["file"] == f"/v2/images/{created['id']}/file"
    assert created["schema"] == "/v2/schemas/image"

    resp = image_api.put(f"/images/{created['id']}/file", data=qcow2_data,
                         headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    active = wait_image(image_api, created["id"])
    assert active["checksum"] == md5(qcow2_data)
    assert active["os_hash_algo"] == "sha512"
    assert active["os_hash_value"] == sha512(qcow2_data)
    assert active["size"] == len(qcow2_data)
    assert (active["min_disk"], active["min_ram"]) == (1, 64)

    data = image_api.get(f"/images/{created['id']}/file")
    assert data.status_code == 200
    assert data.content == qcow2_data
    assert data.headers["Content-Type"] == OCTET
    assert data.headers["Content-MD5"] == md5(qcow2_data)


def test_upload_must_match_disk_format(image_api, images, unique):
    """Format inspection: bytes that are not qcow2 are refused (415) for a qcow2 image,
    which stays queued for another try."""
    created = create_image(image_api, images, unique)
    resp = image_api.put(f"/images/{created['id']}/file", data=b"not a qcow2 " * 4096,
                         headers={"Content-Type": OCTET, **JSON})
    _error(resp, 415)
    assert image_api.get(f"/images/{created['id']}").json()["status"] == "queued"


def test_raw_takes_any_bytes(image_api, images, unique, qcow2_data):
    """A raw image may hold anything, even bytes that look like qcow2."""
    created = create_image(image_api, images, unique, disk_format="raw")
    resp = image_api.put(f"/images/{created['id']}/file", data=qcow2_data,
                         headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    assert wait_image(image_api, created["id"])["checksum"] == md5(qcow2_data)


def test_patch_properties(image_api, images, unique):
    created = create_image(image_api, images, unique, disk_format="raw",
                           imagefleet_build="b1")
    assert created["imagefleet_build"] == "b1"
    ops = [{"op": "add", "path": "/imagefleet_sha256", "value": "ab" * 32},
           {"op": "replace", "path": "/name", "value": unique + "-renamed"},
           {"op": "replace", "path": "/imagefleet_build", "value": "b2"},
           {"op": "add", "path": "/min_ram", "value": 512}]
    resp = image_api.patch(f"/images/{created['id']}", json=ops,
                           headers={"Content-Type": PATCH_TYPE})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["imagefleet_sha256"] == "ab" * 32
    assert doc["imagefleet_build"] == "b2"
    assert doc["name"] == unique + "-renamed"
    assert doc["min_ram"] == 512

    resp = image_api.patch(f"/images/{created['id']}",
                           json=[{"op": "remove", "path": "/imagefleet_sha256"}],
                           headers={"Content-Type": PATCH_TYPE})
    assert resp.status_code == 200, resp.text
    assert "imagefleet_sha256" not in image_api.get(f"/images/{created['id']}").json()

    resp = image_api.patch(f"/images/{created['id']}",
                           json=[{"op": "remove", "path": "/no_such_property"}],
                           headers={"Content-Type": PATCH_TYPE})
    assert resp.status_code == 409, resp.text


def test_list_filters(image_api, images, unique):
    first = create_image(image_api, images, unique + "-a", disk_format="raw", tags=[unique])
    second = create_image(image_api, images, unique + "-b", tags=[unique])

    def names(query: str) -> list[str]:
        resp = image_api.get(f"/images?{query}")
        assert resp.status_code == 200, resp.text
        return [i["name"] for i in resp.json()["images"]]

    assert names(f"name={unique}-a") == [unique + "-a"]
    assert sorted(names(f"tag={unique}")) == [unique + "-a", unique + "-b"]
    assert names(f"tag={unique}&disk_format=qcow2") == [unique + "-b"]
    assert names(f"tag={unique}&sort_key=name&sort_dir=desc") == [unique + "-b", unique + "-a"]
    assert names(f"tag={unique}&status=active") == []
    assert sorted(names(f"tag={unique}&status=queued")) == [unique + "-a", unique + "-b"]

    page = image_api.get(f"/images?tag={unique}&limit=1&sort_key=name&sort_dir=asc").json()
    assert [i["id"] for i in page["images"]] == [first["id"]]
    assert page["next"].startswith("/v2/images?")
    rest = image_api.get(page["next"].removeprefix("/v2")).json()
    assert [i["id"] for i in rest["images"]] == [second["id"]]


def test_delete(image_api, images, unique):
    created = create_image(image_api, images, unique)
    assert image_api.delete(f"/images/{created['id']}").status_code == 204
    assert image_api.get(f"/images/{created['id']}").status_code == 404
    assert image_api.delete(f"/images/{created['id']}").status_code == 404
    images.remove(created["id"])


def _error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) >= {"message", "code", "title"}, body
    assert body["code"].startswith(str(status))
    return body


@pytest.mark.parametrize("status", [400, 401, 404, 409, 415])
def test_error_status_and_shape(target, image_api, images, unique, qcow2_data, status):
    """Glance v2's error statuses, with its JSON body when the client asks for JSON."""
    if status == 400:
        resp = image_api.post("/images", headers=JSON, json={
            "name": unique, "disk_format": "floppy", "container_format": "bare"})
    elif status == 401:
        resp = requests.get(image_api.get_endpoint().rstrip("/") + "/images", headers=JSON,
                            timeout=30)
        assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")
    elif status == 404:
        resp = image_api.get("/images/00000000-0000-0000-0000-000000000000", headers=JSON)
    elif status == 409:
        created = create_image(image_api, images, unique)
        image_api.put(f"/images/{created['id']}/file", data=qcow2_data,
                      headers={"Content-Type": OCTET})
        wait_image(image_api, created["id"])
        resp = image_api.put(f"/images/{created['id']}/file", data=qcow2_data,
                             headers={"Content-Type": OCTET, **JSON})
    else:
        created = create_image(image_api, images, unique)
        resp = image_api.patch(f"/images/{created['id']}", headers=JSON,
                               json=[{"op": "add", "path": "/x", "value": "y"}])
    _error(resp, status)


def test_error_body_follows_accept(image_api):
    """Without Accept: application/json Glance's error body is webob's HTML."""
    resp = image_api.get("/images/00000000-0000-0000-0000-000000000000",
                         headers={"Accept": "*/*"})
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "No image found with ID 00000000-0000-0000-0000-000000000000" in resp.text
