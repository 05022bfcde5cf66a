"""Glance v1 conformance: POST with x-image-meta-* headers and the body, HEAD/GET/PUT/DELETE."""

from __future__ import annotations

import pytest

from tests.localcloud.conftest import image_adapter, md5, qcow2_bytes


@pytest.fixture
def glance(lc, sessions):
    adapter = image_adapter(sessions["hp-like"], lc, "hp-like", 1)
    yield adapter
    for image in adapter.get("/images").json()["images"]:
        adapter.delete(f"/images/{image['id']}")


def _meta(name="v1", properties=None, **extra):
    headers = {"x-image-meta-name": name, "x-image-meta-disk-format": "qcow2",
               "x-image-meta-container-format": "bare", "x-image-meta-is-public": "false",
               "Content-Type": "application/octet-stream"}
    headers.update({f"x-image-meta-{k.replace('_', '-')}": str(v) for k, v in extra.items()})
    headers.update({f"x-image-meta-property-{k}": v for k, v in (properties or {}).items()})
    return headers


def test_post_with_body_creates_an_active_image(glance):
    data = qcow2_bytes()
    headers = _meta(properties={"os_distro": "ubuntu"}, checksum=md5(data), size=len(data))
    created = glance.post("/images", data=data, headers=headers)
    assert created.status_code == 201
    image = created.json()["image"]
    assert image["status"] == "active" and image["checksum"] == md5(data)
    assert image["size"] == len(data) and image["properties"] == {"os_distro": "ubuntu"}
    head = glance.head(f"/images/{image['id']}")
    assert head.headers["x-image-meta-status"] == "active"
    assert head.headers["x-image-meta-property-os_distro"] == "ubuntu"
    body = glance.get(f"/images/{image['id']}")
    assert body.content == data and body.headers["x-image-meta-checksum"] == md5(data)


def test_reserve_then_put_data(glance):
    reserved = glance.post("/images", headers=_meta("later")).json()["image"]
    assert reserved["status"] == "queued"
    data = qcow2_bytes(5000)
    updated = glance.put(f"/images/{reserved['id']}", data=data,
                         headers={"Content-Type": "application/octet-stream",
                                  "x-glance-registry-purge-props": "false"}).json()["image"]
    assert updated["status"] == "active" and updated["size"] == 5000
    again = glance.put(f"/images/{reserved['id']}", data=b"more", raise_exc=False,
                       headers={"Content-Type": "application/octet-stream"})
    assert again.status_code == 409


def test_put_updates_metadata(glance):
    image = glance.post("/images", data=qcow2_bytes(), headers=_meta()).json()["image"]
    updated = glance.put(f"/images/{image['id']}", headers={
        "x-image-meta-name": "renamed", "x-image-meta-property-a": "1"}).json()["image"]
    assert updated["name"] == "renamed" and updated["properties"] == {"a": "1"}


def test_wrong_disk_format_gets_v1_error(glance):
    headers = _meta(disk_format="vhd")
    response = glance.post("/images", data=b"x", headers=headers, raise_exc=False)
    assert response.status_code == 400
    assert "Invalid disk format 'vhd' for image." in response.json()["message"]
    assert glance.get("/images").json()["images"] == []


def test_checksum_mismatch_kills_the_image(glance):
    response = glance.post("/images", data=qcow2_bytes(), raise_exc=False,
                           headers=_meta(checksum="0" * 32))
    assert response.status_code == 400
    images = glance.get("/images/detail").json()["images"]
    assert [i["status"] for i in images] == ["killed"]


def test_list_and_detail_filters(glance):
    for name in ("a", "b"):
        glance.post("/images", data=qcow2_bytes(), headers=_meta(name, properties={"role": name}))
    summary = glance.get("/images").json()["images"]
    assert set(summary[0]) == {"id", "name", "disk_format", "container_format", "size",
                               "checksum"}
    detail = glance.get("/images/detail?property-role=b").json()["images"]
    assert [i["name"] for i in detail] == ["b"]
    assert len(glance.get("/images/detail?name=a").json()["images"]) == 1


def test_delete(glance):
    image = glance.post("/images", headers=_meta()).json()["image"]
    assert glance.delete(f"/images/{image['id']}").status_code == 200
    assert glance.head(f"/images/{image['id']}", raise_exc=False).status_code == 404


def test_both_versions_see_the_same_images_on_a_v1_and_v2_cloud(lc, sessions):
    v1 = image_adapter(sessions["auro-like"], lc, "auro-like", 1)
    v2 = image_adapter(sessions["auro-like"], lc, "auro-like", 2)
    image = v1.post("/images", data=qcow2_bytes(), headers=_meta("both")).json()["image"]
    shown = v2.get(f"/images/{image['id']}").json()
    assert shown["status"] == "active" and shown["checksum"] == image["checksum"]
    v2.delete(f"/images/{image['id']}")


# --- listing pages, typed headers, deletes a real store refuses ---------------------

@pytest.fixture
def paged_v1(paged):
    from tests.localcloud.conftest import make_session
    adapter = image_adapter(make_session(paged, "hp-like"), paged, "hp-like", 1)
    yield adapter
    while images := adapter.get("/images").json()["images"]:
        for image in images:
            adapter.put(f"/images/{image['id']}", headers={"x-image-meta-protected": "False"})
            adapter.delete(f"/images/{image['id']}")


def test_detail_pages_by_marker_at_the_cloud_limits(paged_v1):
    glance = paged_v1
    made = {glance.post("/images", headers=_meta(f"p{n}")).json()["image"]["id"]
            for n in range(5)}
    assert len(glance.get("/images/detail").json()["images"]) == 2     # limit_param_default
    seen, params = [], {"limit": 100}
    while page := glance.get("/images/detail", params=params).json()["images"]:
        assert len(page) <= 3                                          # api_limit_max
        seen += [i["id"] for i in page]
        params = {"limit": 100, "marker": page[-1]["id"]}
    assert sorted(seen) == sorted(made)


def test_typed_headers_and_deletes_the_store_refuses(paged, paged_v1):
    glance = paged_v1
    created = glance.post("/images", headers=_meta(min_disk=2, min_ram=512, protected="True",
                                                   properties={"hw_disk_bus": "virtio"}))
    image = created.json()["image"]
    assert (image["min_disk"], image["min_ram"], image["protected"]) == (2, 512, True)
    assert image["properties"] == {"hw_disk_bus": "virtio"}
    assert glance.delete(f"/images/{image['id']}", raise_exc=False).status_code == 403
    busy = glance.post("/images", headers=_meta("busy")).json()["image"]
    paged.add_fault("hp-like", kind="in_use", method="DELETE", path=busy["id"], times=None)
    assert glance.delete(f"/images/{busy['id']}", raise_exc=False).status_code == 409
    paged.clear_faults()
    assert glance.delete(f"/images/{busy['id']}").status_code == 200
