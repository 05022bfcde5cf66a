"""Glance v2 interoperable import: /v2/info/import, stage + glance-direct, web-download."""

from __future__ import annotations

from tests.conformance.conftest import OCTET, create_image, md5, sha512, wait_image
from tests.conformance.test_object import put_object, temp_url

JSON = {"Accept": "application/json"}


def import_methods(image_api) -> list[str]:
    resp = image_api.get("/info/import")
    assert resp.status_code == 200, resp.text
    methods = resp.json()["import-methods"]
    assert methods["type"] == "array"
    return methods["value"]


def test_import_info(image_api):
    assert "glance-direct" in import_methods(image_api)


def test_glance_direct(image_api, images, unique, qcow2_data):
    created = create_image(image_api, images, unique)
    resp = image_api.put(f"/images/{created['id']}/stage", data=qcow2_data,
                         headers={"Content-Type": OCTET})
    assert resp.status_code == 204, resp.text
    assert image_api.get(f"/images/{created['id']}").json()["status"] == "uploading"
    resp = image_api.post(f"/images/{created['id']}/import",
                          json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 202, resp.text
    active = wait_image(image_api, created["id"])
    assert active["checksum"] == md5(qcow2_data)
    assert active["os_hash_value"] == sha512(qcow2_data)
    assert active["size"] == len(qcow2_data)
    assert not active.get("os_glance_failed_import")
    assert not active.get("os_glance_importing_to_stores")


def test_stage_needs_octet_stream(image_api, images, unique, qcow2_data):
    created = create_image(image_api, images, unique)
    resp = image_api.put(f"/images/{created['id']}/stage", data=qcow2_data,
                         headers={"Content-Type": "application/json", **JSON})
    assert resp.status_code == 415, resp.text
    assert image_api.get(f"/images/{created['id']}").json()["status"] == "queued"


def test_import_before_stage_is_409(image_api, images, unique):
    created = create_image(image_api, images, unique)
    resp = image_api.post(f"/images/{created['id']}/import", headers=JSON,
                          json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"].startswith("409")


def test_unknown_import_method_is_400(image_api, images, unique):
    created = create_image(image_api, images, unique)
    resp = image_api.post(f"/images/{created['id']}/import", headers=JSON,
                          json={"method": {"name": "carrier-pigeon"}})
    assert resp.status_code == 400, resp.text


def test_web_download_from_temp_url(image_api, swift, containers, images, unique,
                                    qcow2_data):
    """Where web-download is enabled, Glance fetches the image from a Swift temp URL."""
    assert "web-download" in import_methods(image_api)
    put_object(swift, containers, unique, "disk.qcow2", qcow2_data)
    url = temp_url(swift, f"{unique}/disk.qcow2")
    created = create_image(image_api, images, unique)
    resp = image_api.post(f"/images/{created['id']}/import",
                          json={"method": {"name": "web-download", "uri": url}})
    assert resp.status_code == 202, resp.text
    active = wait_image(image_api, created["id"])
    assert active["checksum"] == md5(qcow2_data)
    assert active["size"] == len(qcow2_data)
