"""Fixtures: one local cloud serving every personality, driven as a client would.

Sessions come from the written clouds.yaml through keystoneauth1's own
loaders, so the tests read credentials exactly as the pipeline will.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest
from keystoneauth1 import adapter, loading, session
from swiftclient import client as swift
from swiftclient.service import SwiftService, SwiftUploadObject

from localcloud.testing import RunningCloud, running_cloud

ALL = ["rackspace-like", "hp-like", "dreamhost-like", "vexxhost-like", "ovh-like",
       "auro-like"]
# magic, version 3, no backing file (Glance refuses one)
QCOW2_HEADER = b"QFI\xfb\x00\x00\x00\x03" + bytes(8)
OCTET = {"Content-Type": "application/octet-stream"}     # an image's bytes, PUT as they are


def make_session(lc: RunningCloud, cloud: str) -> session.Session:
    config = lc.config(cloud)
    plugin = loading.get_plugin_loader(config["auth_type"]).load_from_options(**config["auth"])
    return session.Session(auth=plugin)


def image_adapter(sess: session.Session, lc: RunningCloud, cloud: str,
                  version: int) -> adapter.Adapter:
    return adapter.Adapter(sess, service_type="image", interface="public",
                           region_name=lc.config(cloud)["region_name"],
                           min_version=version, max_version=version)


def wait_for(check, timeout: float = 10.0, every: float = 0.05):
    """Poll ``check()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout} s")
        time.sleep(every)


def qcow2_bytes(size: int = 70000) -> bytes:
    """Bytes that pass a qcow2 magic check (the local cloud inspects only the header)."""
    return QCOW2_HEADER + os.urandom(size - len(QCOW2_HEADER))


def vhd_bytes(size: int = 3 * 1024 * 1024 + 512) -> bytes:
    """Bytes ending in a VHD footer cookie, as a fixed VHD does."""
    body = os.urandom(size - 512)
    return body + b"conectix" + bytes(504)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def connection(lc, cloud: str) -> swift.Connection:
    """Authenticate as swiftclient does on its own, with the clouds.yaml credentials."""
    config = lc.config(cloud)
    auth = config["auth"]
    version = config["identity_api_version"]
    options = {"region_name": config["region_name"], "project_name": auth["project_name"],
               "tenant_name": auth["project_name"], "user_domain_name": "Default",
               "project_domain_name": "Default"}
    return swift.Connection(authurl=auth["auth_url"], user=auth["username"],
                            key=auth["password"], auth_version=version, os_options=options,
                            retries=2, starting_backoff=0.1)


def upload_segmented(lc, cloud: str, tmp_path, name: str, data: bytes) -> None:
    """A python-swiftclient SLO upload, as the pipeline stages an image."""
    source = tmp_path / name
    source.write_bytes(data)
    url, token = connection(lc, cloud).get_auth()
    options = {"os_storage_url": url, "os_auth_token": token, "segment_size": 1 << 20,
               "use_slo": True}
    with SwiftService(options) as svc:
        results = list(svc.upload("staging", [SwiftUploadObject(str(source), name)],
                                  options={"header": ["X-Delete-After:3600"]}))
    assert all(r["success"] for r in results), results


def wait_task(glance, task_id: str) -> dict:
    def finished():
        task = glance.get(f"/tasks/{task_id}").json()
        return task if task["status"] in ("success", "failure") else None
    return wait_for(finished)


@pytest.fixture
def rackspace(lc, sessions):
    """Glance v2 of the task-only cloud; afterwards its images and staging are gone."""
    glance = image_adapter(sessions["rackspace-like"], lc, "rackspace-like", 2)
    yield glance
    for image in glance.get("/images").json()["images"]:
        glance.delete(f"/images/{image['id']}")
    with SwiftService({"os_storage_url": connection(lc, "rackspace-like").get_auth()[0],
                       "os_auth_token": sessions["rackspace-like"].get_token()}) as svc:
        for container in ("staging", "staging_segments"):
            for _ in svc.delete(container):
                pass
    assert lc.leftovers("rackspace-like") == {}


@pytest.fixture(scope="session")
def lc(tmp_path_factory) -> Iterator[RunningCloud]:
    with running_cloud(ALL, tmp_path_factory.mktemp("localcloud")) as cloud:
        yield cloud


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    yield
    for name in ("lc", "lcc"):
        if name in request.fixturenames:
            request.getfixturevalue(name).clear_faults()


@pytest.fixture(scope="session")
def lcc(tmp_path_factory) -> Iterator[RunningCloud]:
    """A second local cloud for compute and network: its servers are real qemu guests."""
    with running_cloud(ALL, tmp_path_factory.mktemp("localcloud-compute"),
                       extra_args=["--max-boots", "2"]) as cloud:
        yield cloud


@pytest.fixture(scope="session")
def csessions(lcc) -> dict[str, session.Session]:
    return {name: make_session(lcc, name) for name in ALL}


@pytest.fixture(scope="session")
def tiny(lcc, csessions) -> dict[str, str]:
    """The tiny bootable image, uploaded to every cloud in its format: cloud -> image id."""
    from localcloud.personality import load
    from tests.localcloud.cloudops import upload_image
    from tests.localcloud.tinyimage import tiny_image
    return {name: upload_image(lcc, csessions[name], name,
                               tiny_image(load(name).disk_formats[0]))
            for name in ALL}


@pytest.fixture(scope="session")
def sessions(lc) -> dict[str, session.Session]:
    return {name: make_session(lc, name) for name in ALL}


SMALL_PAGES = {"limit_default": 2, "limit_max": 3}
PAGED = ["vexxhost-like", "dreamhost-like", "hp-like"]     # Glance v2.9, v2.5, v1


@pytest.fixture(scope="module")
def paged(tmp_path_factory) -> Iterator[RunningCloud]:
    """Clouds whose image listings page at 2 (default) and 3 (maximum) images."""
    from localcloud.testing import personality_file
    d = tmp_path_factory.mktemp("paged")
    files = [personality_file(d, name, image_listing=SMALL_PAGES) for name in PAGED]
    with running_cloud(files, d / "data") as cloud:
        yield cloud
