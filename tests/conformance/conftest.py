"""Differential conformance: every check runs against upstream OpenStack and the local cloud.

Targets, one session-scoped parameter:

* ``upstream``: Keystone, Glance and Swift from PyPI on 127.0.0.1, started by
  the same ``upstream.run.start`` as ``make upstream`` (the venv is built on
  first use and cached under the work dir; a running one is reused and left
  running, one started here is stopped at the end unless
  ``IMAGEFLEET_UPSTREAM_KEEP=1``). ``IMAGEFLEET_UPSTREAM=skip`` skips it.
* ``localcloud``: the local cloud serving ``upstream.yaml`` beside this file,
  the personality that matches what ``make upstream`` configures.

The compute and network checks run against upstream Nova, Placement and
Neutron (``upstream/compute.py``: the fake virt driver, ML2 without agents),
started on first use by ``upstream_compute``, which yields an
``UpstreamCompute`` whose ``target`` reaches them through the same
clouds.yaml as ``upstream_cloud`` (admin ``upstream``, tenant ``upstream-demo``).

The checks of a single-store Glance that converts imports
(``test_single_store.py``) run against the second upstream Glance that
``upstream.single`` starts on first use (``upstream_single``) and the local
cloud's ``upstream-single.yaml``. The compute and network checks
(``compute/test_compute.py``, ``compute/test_network.py``) run against upstream Nova and
Neutron (``upstream_compute``) and the local cloud's ``upstream-compute.yaml``;
they and their targets are in ``compute/``.

A check the local cloud knowingly fails is listed in ``differences.py`` (and
docs/upstream.md) and is a strict xfail there. At the end pytest prints a
table of which checks pass on which target.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from keystoneauth1 import adapter, loading, session

from localcloud.testing import running_cloud
from pipeline.core.waiting import iterate_timeout
from tests.conformance.differences import DIFFERENCES
from tests.summaries import CHECK, TARGETS, note
from tests.xdist_groups import group_of
from upstream import compute as upstream_compute_run
from upstream import run as upstream_run
from upstream import single as upstream_single_run

HERE = Path(__file__).resolve().parent
PERSONALITY = HERE / "upstream.yaml"
SINGLE_PERSONALITY = HERE / "upstream-single.yaml"
COMPUTE_PERSONALITY = HERE / "upstream-compute.yaml"
IMAGE_V2 = {"min_version": "2", "max_version": "2.latest"}
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
OCTET = "application/octet-stream"


# The upstream services' stops, newest first when run: each runs once, at its
# fixture's teardown or as soon as the last test of the upstream group is done
# (``pytest_runtest_teardown``). The group runs whole on one worker
# (tests/xdist_groups.py), and the services would otherwise sit idle beside the
# rest of the suite, holding CPU (periodic tasks) and 1.7 GiB.
_STOPS: list[Callable[[], None]] = []


def stop_after_group(finish: Callable[[], None]) -> Callable[[], None]:
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            finish()
    _STOPS.append(once)
    return once


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    if nextitem is None or group_of(nextitem.nodeid) != group_of(item.nodeid):
        while _STOPS:
            _STOPS.pop()()


@dataclass
class UpstreamCloud:
    """What the upstream fixture yields: a clouds.yaml and who may use it."""

    clouds_yaml: Path
    cloud: str
    admin: dict[str, str]
    demo_cloud: str
    state: dict[str, Any] = field(repr=False)


@pytest.fixture(scope="session")
def upstream_cloud(request) -> Iterator[UpstreamCloud]:
    if os.environ.get("IMAGEFLEET_UPSTREAM") == "skip":
        pytest.skip("IMAGEFLEET_UPSTREAM=skip")
    state = upstream_run.start()

    def finish() -> None:
        rss_mib = sum(upstream_run.memory(state).values()) / 1024
        how = "reused" if state["reused"] else f"started in {state['start_s']} s"
        if state.get("install_s"):
            how += f", venv installed in {state['install_s']:.0f} s"
        note(request.config, f"upstream services: {how}; {rss_mib:.0f} MiB resident at the end")
        if not state["reused"] and os.environ.get("IMAGEFLEET_UPSTREAM_KEEP") != "1":
            upstream_run.stop()
    finish = stop_after_group(finish)
    yield UpstreamCloud(clouds_yaml=Path(state["clouds_yaml"]), cloud=state["cloud"],
                        admin=dict(state["admin"], auth_url=state["auth_url"]),
                        demo_cloud=f"{state['cloud']}-demo", state=state)
    finish()


@pytest.fixture(scope="session")
def upstream_single(upstream_cloud, request) -> Iterator[dict[str, Any]]:
    """The single-store, converting Glance (upstream/single.py): clouds_yaml, cloud."""
    info = upstream_single_run.start()

    def finish() -> None:
        how = "reused" if info["reused"] else f"started in {info['start_s']} s"
        note(request.config, f"upstream {upstream_single_run.NAME}: {how}")
        if not info["reused"] and os.environ.get("IMAGEFLEET_UPSTREAM_KEEP") != "1":
            upstream_single_run.stop()
    finish = stop_after_group(finish)
    yield info
    finish()


@dataclass
class UpstreamCompute:
    """What ``upstream_compute`` yields: the target (the main clouds.yaml, whose
    catalog now lists compute, network and placement) and what was made for it."""

    target: Target
    host: str                     # nova-compute's host, the one ports are bound to
    resources: dict[str, Any]     # flavors, image, public_network, tenant_network, router
    info: dict[str, Any] = field(repr=False)


@pytest.fixture(scope="session")
def upstream_compute(upstream_cloud, request) -> Iterator[UpstreamCompute]:
    """Upstream Nova (fake driver), Placement and Neutron, started on first use."""
    info = upstream_compute_run.start()
    up = upstream_cloud

    def finish() -> None:
        note(request.config, f"upstream compute/network: {upstream_compute_run.describe(info)}")
        if not info["reused"] and os.environ.get("IMAGEFLEET_UPSTREAM_KEEP") != "1":
            upstream_compute_run.stop()
    finish = stop_after_group(finish)
    yield UpstreamCompute(target=Target("upstream", up.clouds_yaml, up.cloud, up.demo_cloud),
                          host=info["host"], resources=info["resources"], info=info)
    finish()


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory):
    with running_cloud([str(PERSONALITY), str(SINGLE_PERSONALITY), str(COMPUTE_PERSONALITY)],
                       tmp_path_factory.mktemp("conformance-local")) as lc:
        yield lc


@dataclass
class Target:
    """One cloud under test, reached only through its clouds.yaml, as a client would."""

    name: str
    clouds_yaml: Path
    cloud: str
    demo_cloud: str | None = None

    def config(self, cloud: str | None = None) -> dict[str, Any]:
        return yaml.safe_load(self.clouds_yaml.read_text())["clouds"][cloud or self.cloud]

    def session(self, cloud: str | None = None) -> session.Session:
        config = self.config(cloud)
        loader = loading.get_plugin_loader(config["auth_type"])
        return session.Session(auth=loader.load_from_options(**config["auth"]))

    def image(self, sess: session.Session, **kwargs: Any) -> adapter.Adapter:
        return adapter.Adapter(sess, service_type="image", interface="public",
                               region_name=self.config()["region_name"], raise_exc=False,
                               **IMAGE_V2, **kwargs)

    def object_store(self, sess: session.Session) -> adapter.Adapter:
        return adapter.Adapter(sess, service_type="object-store", interface="public",
                               region_name=self.config()["region_name"], raise_exc=False)

    def compute(self, sess: session.Session, **kwargs: Any) -> adapter.Adapter:
        return adapter.Adapter(sess, service_type="compute", interface="public",
                               region_name=self.config()["region_name"], raise_exc=False,
                               **kwargs)

    def network(self, sess: session.Session) -> adapter.Adapter:
        return adapter.Adapter(sess, service_type="network", interface="public",
                               region_name=self.config()["region_name"], raise_exc=False)


@pytest.fixture(scope="session", params=TARGETS)
def target(request) -> Target:
    if request.param == "upstream":
        up = request.getfixturevalue("upstream_cloud")
        return Target("upstream", up.clouds_yaml, up.cloud, up.demo_cloud)
    lc = request.getfixturevalue("local_cloud")
    return Target("localcloud", lc.clouds_yaml, "upstream")


@pytest.fixture(scope="session")
def sess(target) -> session.Session:
    return target.session()


@pytest.fixture(scope="session")
def image_api(target, sess) -> adapter.Adapter:
    return target.image(sess)


@pytest.fixture(scope="session")
def swift(target, sess) -> adapter.Adapter:
    return target.object_store(sess)


@pytest.fixture(scope="session")
def qcow2_data(tmp_path_factory) -> bytes:
    """A real (tiny) qcow2 from qemu-img: upstream Glance inspects what it stores."""
    path = tmp_path_factory.mktemp("qcow2") / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path.read_bytes()


@pytest.fixture
def unique() -> str:
    return f"conformance-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def images(image_api) -> Iterator[list[str]]:
    """Ids of images a test made; whatever is left is deleted afterwards."""
    made: list[str] = []
    yield made
    for image_id in made:
        image_api.delete(f"/images/{image_id}")


@pytest.fixture
def containers(swift) -> Iterator[list[str]]:
    """Containers a test made; emptied and deleted afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        listing = swift.get(f"/{name}?format=json")
        for obj in listing.json() if listing.status_code == 200 else []:
            swift.delete(f"/{name}/{obj['name']}")
        swift.delete(f"/{name}")


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def wait_for(check, timeout: float = 60, what: str = "condition", every: float = 0.25):
    """``check()``'s first truthy value, polling; fails the test after ``timeout``."""
    for _ in iterate_timeout(timeout, what, wait=every):
        value = check()
        if value:
            return value
    return None


def wait_image(image_api, image_id: str, status: str = "active", timeout: float = 60) -> dict:
    def current():
        doc = image_api.get(f"/images/{image_id}").json()
        if doc["status"] in ("killed", "deleted") and status not in ("killed", "deleted"):
            raise AssertionError(f"image {image_id} went {doc['status']}")
        return doc if doc["status"] == status else None
    return wait_for(current, timeout, f"image {image_id} to be {status}")


def create_image(image_api, images: list[str], name: str, disk_format: str = "qcow2",
                 **fields: Any) -> dict:
    resp = image_api.post("/images", json={"name": name, "disk_format": disk_format,
                                           "container_format": "bare", **fields})
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    images.append(doc["id"])
    return doc


# --- known differences and the per-target summary -------------------------------

# The table itself is tests/summaries.py (it runs where the reports arrive).


def pytest_configure(config):
    config.addinivalue_line("markers", "upstream: runs against the upstream OpenStack services "
                                       "(deselect with -m 'not upstream')")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(str(item.fspath)).parents:
            continue
        callspec = getattr(item, "callspec", None)
        target = callspec.params.get("target") if callspec else None
        if target is None and "upstream_cloud" in getattr(item, "fixturenames", ()):
            target = "upstream"
        if target == "upstream":
            item.add_marker(pytest.mark.upstream)
        if target not in TARGETS:
            continue
        params = callspec.params if callspec else {}
        others = [str(v) for k, v in params.items() if k != "target"]
        check = item.originalname + "".join(f"[{o}]" for o in others)
        item.user_properties.append((CHECK, [check, target]))
        reason = DIFFERENCES.get(item.originalname)
        if reason and target == "localcloud":
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"known difference: {reason}"))
