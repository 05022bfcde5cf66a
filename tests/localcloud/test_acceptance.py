"""Acceptance figures: flat memory through a 1 GiB upload, loopback only.

Start-up time is a figure, not a test: ``bench/startup.py`` measures it against a
bare ``python -m http.server`` (restart on the same data dir: test_persistence.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

from tests.localcloud.conftest import ALL, image_adapter

GIB = 1 << 30
CHUNK = 1 << 20


def test_one_gib_upload_keeps_memory_flat(lc, sessions):
    glance = image_adapter(sessions["dreamhost-like"], lc, "dreamhost-like", 2)
    image_id = glance.post("/images", json={"name": "big", "disk_format": "raw",
                                            "container_format": "bare"}).json()["id"]
    block = bytes(CHUNK)               # one buffer, sent 1024 times: the client holds 1 MiB

    def body():
        for _ in range(GIB // CHUNK):
            yield block

    before = lc.rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], lc.rss_bytes())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    try:
        glance.put(f"/images/{image_id}/file", data=body(),
                   headers={"Content-Type": "application/octet-stream"})
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - began
    image = glance.get(f"/images/{image_id}").json()
    growth = peak[0] - before
    print(f"\n1 GiB upload: {seconds:.1f} s; server RSS before {before / 2**20:.1f} MiB, "
          f"peak {peak[0] / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB")
    assert image["status"] == "active" and image["size"] == GIB
    assert growth < 100 * 2**20
    glance.delete(f"/images/{image_id}")


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        if match:
            inodes.add(match.group(1))
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "0A":          # 0A: LISTEN
                address = fields[1].split(":")[0]
                packed = bytes.fromhex(address)
                ip = ".".join(str(b) for b in packed[::-1]) if table == "tcp" else (
                    str(ipaddress.IPv6Address(b"".join(
                        packed[i:i + 4][::-1] for i in range(0, 16, 4)))))
                found.append(ip)
    return found


def test_only_loopback_is_bound_or_handed_out(lc, sessions):
    addresses = _listening_addresses(lc.process.pid)
    assert len(addresses) == len(ALL) + 1 and set(addresses) == {"127.0.0.1"}
    text = lc.clouds_yaml.read_text() + str(lc.admin("GET", "/admin/clouds"))
    for cloud in ALL:
        base = lc.clouds[cloud]["url"]
        for path in ("/identity/", "/image/"):
            text += requests.get(base + path).text
        access = sessions[cloud].auth.get_access(sessions[cloud])
        text += str(access.service_catalog.catalog)
    for url in re.findall(r"https?://[^\s'\"]+", text):
        assert ipaddress.ip_address(urlparse(url).hostname).is_loopback, url
