"""Glance v2 conformance: create, PUT data, read, list with filters, JSON patch, delete."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.localcloud.conftest import OCTET, image_adapter, md5, qcow2_bytes

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


@pytest.fixture
def glance(lc, sessions):
    adapter = image_adapter(sessions["ovh-like"], lc, "ovh-like", 2)
    yield adapter
    for image in adapter.get("/images?limit=1000").json()["images"]:
        adapter.delete(f"/images/{image['id']}")


def _create(glance, **fields):
    body = {"name": "test", "disk_format": "raw", "container_format": "bare", **fields}
    return glance.post("/images", json=body).json()


def test_put_upload_goes_queued_to_active_with_checksums(glance):
    data = os.urandom(300_000)
    image = _create(glance, os_distro="ubuntu")
    assert image["status"] == "queued" and image["checksum"] is None
    assert image["os_distro"] == "ubuntu" and image["self"] == f"/v2/images/{image['id']}"
    assert glance.put(f"/images/{image['id']}/file", data=data, headers=OCTET).status_code == 204
    shown = glance.get(f"/images/{image['id']}").json()
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == md5(data)
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    download = glance.get(f"/images/{image['id']}/file")
    assert download.content == data and download.headers["Content-MD5"] == md5(data)


def test_streamed_chunked_upload(glance):
    chunks = [os.urandom(65536) for _ in range(20)]
    image = _create(glance)
    glance.put(f"/images/{image['id']}/file", data=iter(chunks), headers=OCTET)
    shown = glance.get(f"/images/{image['id']}").json()
    assert shown["size"] == 20 * 65536 and shown["checksum"] == md5(b"".join(chunks))


def test_a_second_upload_is_a_conflict(glance):
    image = _create(glance)
    glance.put(f"/images/{image['id']}/file", data=b"x" * 10, headers=OCTET)
    again = glance.put(f"/images/{image['id']}/file", data=b"y", headers=OCTET,
                       raise_exc=False)
    assert again.status_code == 409


def test_upload_needs_formats_first(glance):
    image = glance.post("/images", json={"name": "bare"}).json()
    response = glance.put(f"/images/{image['id']}/file", data=b"x", headers=OCTET,
                          raise_exc=False)
    assert response.status_code == 400
    assert "disk_format" in response.json()["message"]


@pytest.mark.parametrize("cloud, taken", [("dreamhost-like", "raw"), ("rackspace-like", "vhd")])
def test_formats_the_cloud_does_not_take_are_refused(lc, sessions, cloud, taken):
    glance = image_adapter(sessions[cloud], lc, cloud, 2)
    container = "ovf" if taken == "vhd" else "bare"
    response = glance.post("/images", json={"name": "q", "disk_format": "qcow2",
                                            "container_format": container}, raise_exc=False)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"message", "code", "title"}
    assert f"'qcow2' is not one of ['{taken}']" in body["message"]
    assert body["code"] == "400 Bad Request"
    assert glance.get("/images").json()["images"] == []


def test_list_filters_sort_and_pages(glance):
    ids = [_create(glance, name=f"img-{n}", tags=["even"] if n % 2 == 0 else [],
                   os_distro="debian" if n < 3 else "ubuntu")["id"] for n in range(5)]
    names = [i["name"] for i in glance.get("/images?sort=name:asc").json()["images"]]
    assert names == [f"img-{n}" for n in range(5)]
    assert len(glance.get("/images?os_distro=debian").json()["images"]) == 3
    assert len(glance.get("/images?tag=even").json()["images"]) == 3
    assert len(glance.get("/images?name=in:img-1,img-4").json()["images"]) == 2
    assert glance.get("/images?status=active").json()["images"] == []
    first = glance.get("/images?limit=2").json()
    assert len(first["images"]) == 2 and first["next"].startswith("/v2/images?")
    seen = [i["id"] for i in first["images"]]
    page = first
    while "next" in page:
        page = glance.get(page["next"].removeprefix("/v2")).json()
        seen += [i["id"] for i in page["images"]]
    assert sorted(seen) == sorted(ids)


def test_json_patch(glance):
    image = _create(glance)
    changes = [{"op": "replace", "path": "/name", "value": "renamed"},
               {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
               {"op": "add", "path": "/min_ram", "value": 512}]
    patched = glance.patch(f"/images/{image['id']}", json=changes, headers=PATCH).json()
    assert patched["name"] == "renamed" and patched["hw_disk_bus"] == "scsi"
    assert patched["min_ram"] == 512
    removed = glance.patch(f"/images/{image['id']}", json=[
        {"op": "remove", "path": "/hw_disk_bus"}], headers=PATCH).json()
    assert "hw_disk_bus" not in removed


@pytest.mark.parametrize("change, status", [
    ({"op": "replace", "path": "/status", "value": "active"}, 403),
    ({"op": "replace", "path": "/nope", "value": "x"}, 409),
    ({"op": "add", "path": "/min_disk", "value": "ten"}, 400),
    ({"op": "replace", "path": "/disk_format", "value": "vhd"}, 400),
])
def test_json_patch_errors(glance, change, status):
    image = _create(glance)
    response = glance.patch(f"/images/{image['id']}", json=[change], headers=PATCH,
                            raise_exc=False)
    assert response.status_code == status


def test_json_patch_needs_its_media_type(glance):
    image = _create(glance)
    response = glance.patch(f"/images/{image['id']}", json=[], raise_exc=False,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 415


def test_delete_and_protected(glance):
    image = _create(glance, protected=True)
    assert glance.delete(f"/images/{image['id']}", raise_exc=False).status_code == 403
    glance.patch(f"/images/{image['id']}", headers=PATCH,
                 json=[{"op": "replace", "path": "/protected", "value": False}])
    assert glance.delete(f"/images/{image['id']}").status_code == 204
    assert glance.get(f"/images/{image['id']}", raise_exc=False).status_code == 404


def test_format_inspection_on_clouds_that_check(lc, sessions):
    vexxhost = image_adapter(sessions["vexxhost-like"], lc, "vexxhost-like", 2)
    image = vexxhost.post("/images", json={"name": "liar", "disk_format": "qcow2",
                                           "container_format": "bare"}).json()
    response = vexxhost.put(f"/images/{image['id']}/file", data=os.urandom(4096),
                            headers=OCTET, raise_exc=False)
    assert response.status_code == 400 and "does not match" in response.json()["message"]
    assert vexxhost.get(f"/images/{image['id']}").json()["status"] == "killed"
    vexxhost.delete(f"/images/{image['id']}")
    good = vexxhost.post("/images", json={"name": "honest", "disk_format": "qcow2",
                                          "container_format": "bare"}).json()
    vexxhost.put(f"/images/{good['id']}/file", data=qcow2_bytes(), headers=OCTET)
    assert vexxhost.get(f"/images/{good['id']}").json()["status"] == "active"
    vexxhost.delete(f"/images/{good['id']}")


def test_schema_lists_the_cloud_formats(lc, sessions):
    rackspace = image_adapter(sessions["rackspace-like"], lc, "rackspace-like", 2)
    schema = rackspace.get("/schemas/image").json()
    assert schema["properties"]["disk_format"]["enum"] == [None, "vhd"]
    assert schema["properties"]["container_format"]["enum"] == [None, "ovf"]


# --- listing pages, typed attributes, deletes a real store refuses ------------------

@pytest.fixture
def paged_v2(paged):
    from tests.localcloud.conftest import make_session
    adapters = {name: image_adapter(make_session(paged, name), paged, name, 2)
                for name in ("vexxhost-like", "dreamhost-like")}
    yield adapters
    for adapter in adapters.values():
        for hidden in ("false", "true"):
            while images := adapter.get(f"/images?os_hidden={hidden}").json()["images"]:
                for image in images:
                    adapter.patch(f"/images/{image['id']}", headers=PATCH, json=[
                        {"op": "replace", "path": "/protected", "value": False}])
                    adapter.delete(f"/images/{image['id']}")


def test_listing_pages_at_the_cloud_limits_and_next_reaches_every_image(paged_v2):
    glance = paged_v2["vexxhost-like"]
    made = {_create(glance, name=f"page{n}")["id"] for n in range(5)}
    first = glance.get("/images").json()
    assert len(first["images"]) == 2 and "next" in first              # limit_param_default
    assert len(glance.get("/images?limit=100").json()["images"]) == 3  # api_limit_max
    seen, url = [], "/images?limit=100"
    while url:
        body = glance.get(url).json()
        seen += [i["id"] for i in body["images"]]
        url = body.get("next", "").removeprefix("/v2")     # next is relative to the root
    assert sorted(seen) == sorted(made)


@pytest.mark.parametrize("key, value, json_type", [
    ("min_disk", "2", "integer"), ("min_ram", "512", "integer"), ("protected", "true", "boolean"),
    ("tags", "a,b", "array"), ("os_distro", 12, "string")])
def test_schema_types_are_enforced_as_glance_does(glance, key, value, json_type):
    resp = glance.post("/images", json={"name": "typed", key: value}, raise_exc=False)
    assert resp.status_code == 400
    assert f"is not of type '{json_type}'" in resp.json()["message"]
    assert f"schema['properties']['{key}']" in resp.json()["message"]


def test_typed_attributes_are_kept_with_their_types(glance):
    image = _create(glance, min_disk=2, min_ram=512, tags=["debian", "lts"], os_distro="debian",
                    hw_disk_bus="virtio")
    shown = glance.get(f"/images/{image['id']}").json()
    assert (shown["min_disk"], shown["min_ram"]) == (2, 512)
    assert shown["tags"] == ["debian", "lts"] and shown["hw_disk_bus"] == "virtio"


def test_protected_is_403_and_in_use_by_the_store_is_409(paged, paged_v2):
    glance = paged_v2["vexxhost-like"]
    protected = _create(glance, protected=True)
    resp = glance.delete(f"/images/{protected['id']}", raise_exc=False)
    assert resp.status_code == 403 and resp.json()["title"] == "Forbidden"
    busy = _create(glance)
    paged.add_fault("vexxhost-like", kind="in_use", method="DELETE", path=busy["id"],
                    times=None)
    resp = glance.delete(f"/images/{busy['id']}", raise_exc=False)
    assert resp.status_code == 409 and "in use" in resp.json()["message"]
    assert glance.get(f"/images/{busy['id']}").status_code == 200
    paged.clear_faults()
    assert glance.delete(f"/images/{busy['id']}").status_code == 204


def test_os_hidden_exists_from_v2_7(paged_v2):
    new, old = paged_v2["vexxhost-like"], paged_v2["dreamhost-like"]      # v2.9, v2.5
    hide = [{"op": "add", "path": "/os_hidden", "value": True}]
    image = _create(old)
    resp = old.patch(f"/images/{image['id']}", headers=PATCH, json=hide, raise_exc=False)
    assert resp.status_code == 400 and "is not of type 'string'" in resp.json()["message"]
    image = _create(new)
    assert new.patch(f"/images/{image['id']}", headers=PATCH, json=hide).json()["os_hidden"]
    assert image["id"] not in [i["id"] for i in new.get("/images?limit=3").json()["images"]]
    hidden = new.get("/images?os_hidden=true").json()["images"]
    assert [i["id"] for i in hidden] == [image["id"]]
