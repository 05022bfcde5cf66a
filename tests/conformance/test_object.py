"""Swift: /info, container and object CRUD, SLO by python-swiftclient, expiry, temp URLs."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import requests
from swiftclient.service import SwiftService, SwiftUploadObject
from swiftclient.utils import generate_temp_url

from tests.conformance.conftest import md5, wait_for

TEMP_URL_KEY = "imagefleet-conformance-key"


def put_object(swift, containers: list[str], container: str, name: str, data: bytes,
               **headers: str) -> requests.Response:
    if container not in containers:
        assert swift.put(f"/{container}").status_code in (201, 202)
        containers.append(container)
    resp = swift.put(f"/{container}/{name}", data=data, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp


def temp_url(swift, path: str, seconds: int = 600) -> str:
    """An absolute GET temp URL for ``container/object``; sets the account key first."""
    resp = swift.post("", headers={"X-Account-Meta-Temp-URL-Key": TEMP_URL_KEY})
    assert resp.status_code == 204, resp.text
    storage = urlsplit(swift.get_endpoint())
    signed = generate_temp_url(f"{storage.path.rstrip('/')}/{path}",
                               int(time.time()) + seconds, TEMP_URL_KEY, "GET")
    return f"{storage.scheme}://{storage.netloc}{signed}"


def info_of(swift) -> dict:
    root = urlsplit(swift.get_endpoint())
    resp = requests.get(f"{root.scheme}://{root.netloc}/info", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_swift_info(swift):
    info = info_of(swift)
    assert info["swift"]["max_file_size"] >= 5 * 1024**3
    assert info["swift"]["account_autocreate"] is True
    assert info["slo"]["max_manifest_segments"] >= 1000
    assert info["slo"]["min_segment_size"] >= 1


def test_swift_info_advertises_tempurl(swift):
    assert "GET" in info_of(swift)["tempurl"]["methods"]


def test_container_object_crud(swift, containers, unique):
    assert swift.put(f"/{unique}").status_code == 201
    containers.append(unique)
    assert swift.put(f"/{unique}").status_code == 202
    data = b"conformance object " * 100
    resp = put_object(swift, containers, unique, "dir/obj.bin", data,
                      **{"X-Object-Meta-Purpose": "test", "Content-Type": "application/x-test"})
    assert resp.headers["Etag"].strip('"') == md5(data)

    head = swift.head(f"/{unique}/dir/obj.bin")
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Etag"].strip('"') == md5(data)
    assert head.headers["X-Object-Meta-Purpose"] == "test"
    assert head.headers["Content-Type"].startswith("application/x-test")
    got = swift.get(f"/{unique}/dir/obj.bin")
    assert got.status_code == 200 and got.content == data

    listing = swift.get(f"/{unique}?format=json")
    assert listing.status_code == 200
    [entry] = listing.json()
    assert entry["name"] == "dir/obj.bin"
    assert entry["bytes"] == len(data) and entry["hash"] == md5(data)
    account = swift.get("?format=json").json()
    assert unique in {c["name"] for c in account}

    assert swift.delete(f"/{unique}").status_code == 409
    assert swift.delete(f"/{unique}/dir/obj.bin").status_code == 204
    assert swift.get(f"/{unique}/dir/obj.bin").status_code == 404
    assert swift.delete(f"/{unique}/dir/obj.bin").status_code == 404
    assert swift.delete(f"/{unique}").status_code == 204
    assert swift.get(f"/{unique}").status_code == 404
    containers.remove(unique)


def test_object_without_token_is_401(swift, containers, unique):
    put_object(swift, containers, unique, "o", b"x")
    resp = requests.get(f"{swift.get_endpoint()}/{unique}/o", timeout=30)
    assert resp.status_code == 401


def test_slo_upload_and_manifest_delete(target, sess, swift, containers, unique, tmp_path):
    """python-swiftclient segments a file as a static large object; deleting the
    manifest with multipart-manifest=delete removes its segments too."""
    segments = f"{unique}_segments"
    containers.extend([unique, segments])
    data = bytes(range(256)) * 1024 * 3 + b"tail"           # 786436 bytes: 4 segments
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    options = {"os_auth_token": sess.get_token(), "os_storage_url": swift.get_endpoint(),
               "retries": 0, "auth_version": "3"}
    with SwiftService(options=options) as service:
        results = list(service.upload(unique, [SwiftUploadObject(str(source), "big.bin")],
                                      options={"segment_size": 256 * 1024, "use_slo": True,
                                               "segment_container": segments}))
    failed = [r for r in results if not r["success"]]
    assert not failed, failed
    head = swift.head(f"/{unique}/big.bin")
    assert head.headers["X-Static-Large-Object"].lower() == "true"
    assert int(head.headers["Content-Length"]) == len(data)
    assert swift.get(f"/{unique}/big.bin").content == data
    manifest = swift.get(f"/{unique}/big.bin?multipart-manifest=get").json()
    assert len(manifest) == 4 and all(s["name"].startswith(f"/{segments}/") for s in manifest)
    assert sum(s["bytes"] for s in manifest) == len(data)
    assert len(swift.get(f"/{segments}?format=json").json()) == 4

    with SwiftService(options=options) as service:
        results = list(service.delete(unique, ["big.bin"]))
    assert all(r["success"] for r in results), results
    assert swift.get(f"/{unique}/big.bin").status_code == 404
    assert swift.get(f"/{segments}?format=json").json() == []


def test_slo_manifest_get_raw(swift, containers, unique):
    """``multipart-manifest=get&format=raw`` gives the manifest back as it was PUT."""
    put_object(swift, containers, unique, "seg/1", b"a" * 10)
    put_object(swift, containers, unique, "seg/2", b"b" * 5)
    body = [{"path": f"/{unique}/seg/1", "etag": md5(b"a" * 10), "size_bytes": 10},
            {"path": f"/{unique}/seg/2", "etag": None, "size_bytes": None}]
    resp = swift.put(f"/{unique}/whole?multipart-manifest=put", json=body)
    assert resp.status_code == 201, resp.text
    assert swift.get(f"/{unique}/whole").content == b"a" * 10 + b"b" * 5
    raw = swift.get(f"/{unique}/whole?multipart-manifest=get&format=raw")
    assert raw.status_code == 200
    assert [(s["path"], s["size_bytes"]) for s in raw.json()] == [
        (f"/{unique}/seg/1", 10), (f"/{unique}/seg/2", 5)]
    assert swift.delete(f"/{unique}/whole?multipart-manifest=delete").status_code == 200
    assert swift.get(f"/{unique}?format=json").json() == []


def test_x_delete_after(swift, containers, unique):
    put_object(swift, containers, unique, "short-lived", b"bye", **{"X-Delete-After": "2"})
    head = swift.head(f"/{unique}/short-lived")
    assert head.status_code == 200
    delete_at = int(head.headers["X-Delete-At"])
    assert abs(delete_at - (time.time() + 2)) < 5
    wait_for(lambda: swift.get(f"/{unique}/short-lived").status_code == 404, timeout=10,
             what="the object to expire")


def test_temp_url_get(swift, containers, unique):
    put_object(swift, containers, unique, "shared.bin", b"shared bytes")
    url = temp_url(swift, f"{unique}/shared.bin")
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200 and resp.content == b"shared bytes"
    resp = requests.get(url.replace("temp_url_sig=", "temp_url_sig=0"), timeout=30)
    assert resp.status_code == 401
