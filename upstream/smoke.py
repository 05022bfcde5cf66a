"""Smoke check of a running upstream: token, catalog, a v2 image upload, a Swift object.

``python -m upstream.smoke`` after ``make upstream``; prints one line per step
and exits non-zero on the first failure. The conformance suite goes further.
"""

from __future__ import annotations

import hashlib
import sys
import time

from keystoneauth1 import adapter, session
from keystoneauth1.identity import v3

from pipeline.core.waiting import iterate_timeout
from upstream.run import Layout, read_state


def main() -> int:
    state = read_state(Layout.from_env())
    if not state:
        print("upstream: not running (make upstream)", file=sys.stderr)
        return 1
    admin = state["admin"]
    sess = session.Session(auth=v3.Password(
        auth_url=state["auth_url"], username=admin["username"], password=admin["password"],
        project_name=admin["project_name"], user_domain_id="default",
        project_domain_id="default"))
    started = time.monotonic()
    print(f"token: {sess.get_token()[:16]}...")
    for entry in sess.auth.get_access(sess).service_catalog.catalog:
        urls = ", ".join(f"{e['interface']}={e['url']}" for e in entry["endpoints"])
        print(f"catalog: {entry['type']}: {urls}")

    image = adapter.Adapter(sess, service_type="image", interface="public", min_version="2",
                            max_version="2.latest")
    data = b"imagefleet smoke " * 4096
    created = image.post("/images", json={"name": "imagefleet-smoke", "disk_format": "raw",
                                          "container_format": "bare"}).json()
    image.put(f"/images/{created['id']}/file", data=data,
              headers={"Content-Type": "application/octet-stream"})
    for _ in iterate_timeout(30, "smoke image to become active", wait=0.5):
        got = image.get(f"/images/{created['id']}").json()
        if got["status"] == "active":
            break
    assert got["checksum"] == hashlib.md5(data).hexdigest(), got
    assert got["os_hash_value"] == hashlib.sha512(data).hexdigest(), got
    print(f"image: {got['id']} active, {got['size']} bytes, checksum {got['checksum']}")
    image.delete(f"/images/{created['id']}")

    swift = adapter.Adapter(sess, service_type="object-store", interface="public")
    swift.put("/imagefleet-smoke")
    swift.put("/imagefleet-smoke/hello", data=b"hello")
    body = swift.get("/imagefleet-smoke/hello").content
    assert body == b"hello", body
    print("object: imagefleet-smoke/hello round-tripped")
    swift.delete("/imagefleet-smoke/hello")
    swift.delete("/imagefleet-smoke")
    print(f"smoke: ok in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
