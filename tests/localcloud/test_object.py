"""Swift conformance with python-swiftclient, unmodified: objects, listings, large objects."""

from __future__ import annotations

import json
import os

import pytest
import requests
from swiftclient.exceptions import ClientException
from swiftclient.service import SwiftService, SwiftUploadObject

from tests.localcloud.conftest import connection, md5, wait_for

# swiftclient authenticates through the deprecated keystoneclient; that is its business.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def service(lc, cloud: str, **options) -> SwiftService:
    conn = connection(lc, cloud)
    url, token = conn.get_auth()
    return SwiftService({"os_storage_url": url, "os_auth_token": token, "retries": 2,
                         **options})


@pytest.fixture
def conn(lc):
    c = connection(lc, "ovh-like")
    yield c
    _empty_account(c)


def _empty_account(c) -> None:
    for container in c.get_account()[1]:
        for obj in c.get_container(container["name"], full_listing=True)[1]:
            c.delete_object(container["name"], obj["name"])
        c.delete_container(container["name"])


def test_info_advertises_slo(lc):
    info = requests.get(lc.clouds["ovh-like"]["url"] + "/info").json()
    assert info["slo"]["max_manifest_segments"] >= 1000
    assert info["swift"]["max_file_size"] > 5 << 30


def test_object_round_trip_and_metadata(conn):
    conn.put_container("c1", headers={"X-Container-Meta-Owner": "me"})
    data = os.urandom(100_000)
    etag = conn.put_object("c1", "dir/obj.bin", data, headers={"X-Object-Meta-Color": "blue"})
    assert etag == md5(data)
    headers, body = conn.get_object("c1", "dir/obj.bin")
    assert body == data and headers["x-object-meta-color"] == "blue"
    assert headers["etag"] == md5(data)
    conn.post_object("c1", "dir/obj.bin", headers={"X-Object-Meta-Shape": "round"})
    headers = conn.head_object("c1", "dir/obj.bin")
    assert headers["x-object-meta-shape"] == "round" and "x-object-meta-color" not in headers
    assert int(headers["content-length"]) == len(data)
    assert conn.head_container("c1")["x-container-meta-owner"] == "me"
    ranged = conn.get_object("c1", "dir/obj.bin", headers={"Range": "bytes=10-19"})[1]
    assert ranged == data[10:20]


def test_listings(conn):
    conn.put_container("c2")
    for name in ("a/1", "a/2", "b/1", "c"):
        conn.put_object("c2", name, b"x")
    names = [o["name"] for o in conn.get_container("c2")[1]]
    assert names == ["a/1", "a/2", "b/1", "c"]
    listing = conn.get_container("c2", delimiter="/")[1]
    assert [o.get("subdir", o.get("name")) for o in listing] == ["a/", "b/", "c"]
    assert [o["name"] for o in conn.get_container("c2", prefix="a/")[1]] == ["a/1", "a/2"]
    assert [o["name"] for o in conn.get_container("c2", marker="a/2", limit=1)[1]] == ["b/1"]
    head = conn.head_container("c2")
    assert head["x-container-object-count"] == "4" and head["x-container-bytes-used"] == "4"
    assert "c2" in [c["name"] for c in conn.get_account()[1]]


def test_errors(conn):
    with pytest.raises(ClientException) as missing:
        conn.get_object("nope", "x")
    assert missing.value.http_status == 404
    conn.put_container("c3")
    conn.put_object("c3", "o", b"x")
    with pytest.raises(ClientException) as busy:
        conn.delete_container("c3")
    assert busy.value.http_status == 409
    with pytest.raises(ClientException) as bad_etag:
        conn.put_object("c3", "o2", b"data", etag="0" * 32)
    assert bad_etag.value.http_status == 422


def test_delete_after_expires_objects(conn, lc):
    conn.put_container("c4")
    conn.put_object("c4", "short", b"x", headers={"X-Delete-After": "1"})
    assert conn.head_object("c4", "short")["x-delete-at"]
    wait_for(lambda: not any(o["container"] == "c4"
                             for o in lc.resources("ovh-like")["objects"]), timeout=5)


def test_swiftservice_segmented_slo_upload(lc, tmp_path, conn):
    data = os.urandom(5 * 65536 + 123)
    source = tmp_path / "image.vhd"
    source.write_bytes(data)
    with service(lc, "ovh-like", segment_size=65536, use_slo=True) as svc:
        results = list(svc.upload("images", [SwiftUploadObject(str(source), "image.vhd")]))
    assert all(r["success"] for r in results), results
    headers, body = conn.get_object("images", "image.vhd")
    assert headers["x-static-large-object"] == "True" and body == data
    found = lc.resources("ovh-like")
    assert len([s for s in found["segments"] if s["container"] == "images_segments"]) == 6
    manifest = json.loads(conn.get_object("images", "image.vhd",
                                          query_string="multipart-manifest=get")[1])
    assert len(manifest) == 6 and sum(m["bytes"] for m in manifest) == len(data)
    with service(lc, "ovh-like") as svc:
        assert all(r["success"] for r in svc.delete("images", ["image.vhd"]))
    assert lc.resources("ovh-like")["segments"] == []


def test_swiftservice_auto_detects_slo_and_downloads(lc, tmp_path, conn):
    data = os.urandom(3 * 40000)
    (tmp_path / "up").write_bytes(data)
    with service(lc, "ovh-like", segment_size=40000) as svc:
        assert all(r["success"] for r in svc.upload("auto", [
            SwiftUploadObject(str(tmp_path / "up"), "blob")]))
        out = tmp_path / "down"
        results = list(svc.download("auto", ["blob"], options={"out_file": str(out)}))
    assert all(r["success"] for r in results), results
    assert out.read_bytes() == data


def test_dynamic_large_object(conn):
    conn.put_container("segs")
    parts = [os.urandom(1000) for _ in range(3)]
    for n, part in enumerate(parts):
        conn.put_object("segs", f"big/{n:03d}", part)
    conn.put_container("dlo")
    conn.put_object("dlo", "big", b"", headers={"X-Object-Manifest": "segs/big/"})
    headers, body = conn.get_object("dlo", "big")
    assert body == b"".join(parts) and headers["x-object-manifest"] == "segs/big/"
    assert headers["etag"] == f'"{md5("".join(md5(p) for p in parts).encode())}"'


def test_slo_manifest_is_checked(conn):
    conn.put_container("s")
    conn.put_object("s", "seg", b"abc")
    bad = json.dumps([{"path": "/s/seg", "etag": "0" * 32, "size_bytes": 3}])
    with pytest.raises(ClientException) as e:
        conn.put_object("s", "m", bad, query_string="multipart-manifest=put")
    assert e.value.http_status == 400 and b"Etag Mismatch" in e.value.http_response_content


def test_an_account_is_only_its_own_project(lc, conn):
    url, token = conn.get_auth()
    other = url.rsplit("AUTH_", 1)[0] + "AUTH_someoneelse"
    assert requests.get(other, headers={"X-Auth-Token": token}).status_code == 403


def test_v2_identity_cloud_with_keystoneclient_auth(lc):
    c = connection(lc, "rackspace-like")
    c.put_container("rax")
    c.put_object("rax", "o", b"hello")
    assert c.get_object("rax", "o")[1] == b"hello"
    _empty_account(c)
