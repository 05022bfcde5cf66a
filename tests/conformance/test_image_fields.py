"""Glance v2 behaviours real clouds show that the pipeline now relies on (issue: publish to
real clouds): schema-typed fields, paging by ``next``, protected images."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.conformance.conftest import PATCH_TYPE, create_image


@pytest.mark.parametrize("field, value", [("min_disk", "2"), ("min_ram", "512"),
                                          ("protected", "true")])
def test_schema_typed_fields_refuse_strings(image_api, images, unique, field, value):
    """Glance's image schema types min_disk/min_ram as integers and protected as boolean."""
    resp = image_api.post("/images", json={"name": unique, "disk_format": "qcow2",
                                           "container_format": "bare", field: value})
    if resp.status_code == 201:
        images.append(resp.json()["id"])
    assert resp.status_code == 400, resp.text


def test_typed_fields_are_kept_with_their_types(image_api, images, unique):
    doc = create_image(image_api, images, unique, min_disk=2, min_ram=512,
                       tags=["imagefleet"], os_distro="debian")
    got = image_api.get(f"/images/{doc['id']}").json()
    assert (got["min_disk"], got["min_ram"], got["tags"]) == (2, 512, ["imagefleet"])
    assert got["os_distro"] == "debian"


def test_listing_follows_next_until_every_image_is_seen(image_api, images, unique):
    """A client must follow ``next`` (with its marker) until it is absent; a page holds at
    most ``limit`` images."""
    made = {create_image(image_api, images, f"{unique}-{i}", tags=[unique])["id"]
            for i in range(4)}
    seen, pages = [], 0
    url = f"/images?tag={unique}&limit=2"
    while url:
        body = image_api.get(url).json()
        pages += 1
        assert len(body["images"]) <= 2
        seen += [i["id"] for i in body["images"]]
        nxt = body.get("next")
        if nxt:
            query = parse_qs(urlparse(nxt).query)
            assert query["marker"] == [body["images"][-1]["id"]]
            url = nxt.split("/v2", 1)[1] if nxt.startswith("/v2") else nxt
        else:
            url = None
        assert pages <= 4
    assert sorted(seen) == sorted(made) and len(seen) == len(made)


def test_protected_image_refuses_delete_until_unprotected(image_api, images, unique):
    doc = create_image(image_api, images, unique, protected=True)
    assert image_api.delete(f"/images/{doc['id']}").status_code == 403
    patch = image_api.patch(f"/images/{doc['id']}", headers={"Content-Type": PATCH_TYPE},
                            json=[{"op": "replace", "path": "/protected", "value": False}])
    assert patch.status_code == 200, patch.text
    assert image_api.delete(f"/images/{doc['id']}").status_code == 204
    images.remove(doc["id"])
