"""Block storage and boot from volume: Cinder v3's volume calls, and Nova's zero-disk rule.

A cloud whose flavors all have zero disk (``compute.zero_disk_flavors``) boots
only volume-backed servers: a create without ``block_device_mapping_v2`` gets
Nova's 403. A volume made from an image checks the image's size and
``min_disk`` at once (400), becomes ``available`` with the image's bytes as
raw, is ``in-use`` while a server boots from it (deleting it then is Cinder's
400) and counts against the volumes and gigabytes quotas (413 ``overLimit``).
No guest boots here (the ``no_answer`` fault: ACTIVE without qemu); the real
boot from a volume is tests/integration/test_verify_volume.py.
"""

from __future__ import annotations

import subprocess

import pytest
from keystoneauth1 import adapter

from localcloud.testing import running_cloud
from tests.localcloud.cloudops import (
    cinder,
    nova,
    upload_image,
    wait_gone,
    wait_status,
    wait_volume,
    zero_disk_personality,
)
from tests.localcloud.conftest import make_session, wait_for
from tests.localcloud.tinyimage import tiny_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CLOUD = "ovh-like"
ZERO_DISK = "Only volume-backed servers are allowed for flavors with zero disk."
GIB = 1 << 30


@pytest.fixture(scope="module")
def zd(tmp_path_factory):
    d = tmp_path_factory.mktemp("zerodisk")
    with running_cloud([zero_disk_personality(d)], d / "data") as lc:
        yield lc


@pytest.fixture(scope="module")
def sess(zd):
    return make_session(zd, CLOUD)


@pytest.fixture(scope="module")
def image_id(zd, sess):
    """The tiny image in the cloud's first format (qcow2): Cinder converts it to raw."""
    return upload_image(zd, sess, CLOUD, tiny_image("qcow2"))


@pytest.fixture
def volumes(zd, sess):
    yield cinder(sess, zd, CLOUD)
    assert {k: v for k, v in zd.leftovers(CLOUD).items() if k != "images"} == {}


def test_the_catalog_lists_cinder_v3_under_each_of_its_names(zd, sess):
    for alias in ("block-storage", "volumev3"):
        found = adapter.Adapter(sess, service_type=alias, interface="public",
                                region_name="GRA7", min_version="3", max_version="3.latest")
        assert found.get_endpoint().endswith(f"/volume/v3/{sess.get_project_id()}")
        assert found.get_api_major_version() == (3, 0)


def test_a_volume_from_an_image_holds_the_image_as_raw(zd, volumes, image_id):
    made = volumes.post("/volumes", json={"volume": {"name": "v", "size": 1,
                                                     "imageRef": image_id}})
    assert made.status_code == 202 and made.json()["volume"]["status"] == "creating"
    vid = made.json()["volume"]["id"]
    volume = wait_volume(volumes, vid, "available", "error")
    assert volume["status"] == "available", volume
    assert volume["bootable"] == "true" and volume["size"] == 1
    assert volume["volume_image_metadata"]["image_id"] == image_id
    assert [v["id"] for v in volumes.get("/volumes/detail").json()["volumes"]] == [vid]
    path = zd.data_dir / "volumes" / CLOUD / f"{vid}.raw"
    info = subprocess.run(["qemu-img", "info", str(path)], capture_output=True, text=True,
                          check=True).stdout
    assert "file format: raw" in info and path.stat().st_size == GIB
    raw = tiny_image("raw").read_bytes()
    with open(path, "rb") as f:
        assert f.read(len(raw)) == raw
    assert volumes.delete(f"/volumes/{vid}").status_code == 202
    wait_for(lambda: volumes.get(f"/volumes/{vid}", raise_exc=False).status_code == 404)
    assert not path.exists()


def test_a_volume_smaller_than_the_images_min_disk_is_refused(zd, sess, volumes, image_id):
    glance = adapter.Adapter(sess, service_type="image", interface="public",
                             region_name="GRA7", min_version="2", max_version="2")
    glance.patch(f"/images/{image_id}", json=[{"op": "replace", "path": "/min_disk",
                                               "value": 2}],
                 headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    try:
        refused = volumes.post("/volumes", json={"volume": {"size": 1, "imageRef": image_id}},
                               raise_exc=False)
    finally:
        glance.patch(f"/images/{image_id}", json=[{"op": "replace", "path": "/min_disk",
                                                   "value": 0}],
                     headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert refused.status_code == 400
    assert refused.json()["badRequest"]["message"] == (
        "Invalid input received: Volume size 1GB cannot be smaller than the image minDisk "
        "size 2GB.")


def test_an_image_whose_virtual_size_does_not_fit_makes_the_volume_error(
        zd, sess, volumes, tmp_path):
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "3G"], check=True)
    big_id = upload_image(zd, sess, CLOUD, big, name="big")
    vid = volumes.post("/volumes", json={"volume": {"size": 1, "imageRef": big_id}}
                       ).json()["volume"]["id"]
    assert wait_volume(volumes, vid, "available", "error")["status"] == "error"
    volumes.delete(f"/volumes/{vid}")
    wait_for(lambda: volumes.get(f"/volumes/{vid}", raise_exc=False).status_code == 404)
    adapter.Adapter(sess, service_type="image", interface="public", region_name="GRA7",
                    min_version="2", max_version="2").delete(f"/images/{big_id}")


def test_the_gigabytes_quota_is_cinders_413(zd, volumes):
    zd.admin("PUT", f"/admin/clouds/{CLOUD}/quotas", json={"gigabytes": 2})
    try:
        refused = volumes.post("/volumes", json={"volume": {"size": 3}}, raise_exc=False)
    finally:
        zd.admin("PUT", f"/admin/clouds/{CLOUD}/quotas", json={"gigabytes": 1000})
    assert refused.status_code == 413
    assert refused.json()["overLimit"]["message"].startswith(
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
        "gigabytes quota. Requested 3G, quota is 2G")


def test_zero_disk_flavors_boot_only_from_a_volume(zd, sess, volumes, image_id):
    compute = nova(sess, zd, CLOUD)
    assert {f["disk"] for f in compute.get("/flavors/detail").json()["flavors"]} == {0}
    refused = compute.post("/servers", json={"server": {
        "name": "s", "imageRef": image_id, "flavorRef": "1"}}, raise_exc=False)
    assert refused.status_code == 403
    assert refused.json()["forbidden"]["message"] == ZERO_DISK
    image_on_host = [{"boot_index": 0, "uuid": image_id, "source_type": "image",
                      "destination_type": "local"}]     # image-backed, as stock clients say it
    refused = compute.post("/servers", json={"server": {
        "name": "s", "imageRef": image_id, "flavorRef": "1",
        "block_device_mapping_v2": image_on_host}}, raise_exc=False)
    assert refused.status_code == 403, refused.text

    vid = volumes.post("/volumes", json={"volume": {"size": 1, "imageRef": image_id}}
                       ).json()["volume"]["id"]
    wait_volume(volumes, vid, "available")
    zd.add_fault(CLOUD, kind="no_answer")          # ACTIVE without a guest: no boot here
    server = compute.post("/servers", json={"server": {
        "name": "bfv", "imageRef": "", "flavorRef": "1",
        "block_device_mapping_v2": [{"boot_index": 0, "uuid": vid, "source_type": "volume",
                                     "destination_type": "volume",
                                     "delete_on_termination": False}]}}).json()["server"]
    shown = wait_status(compute, server["id"], "ACTIVE", "ERROR")
    assert shown["status"] == "ACTIVE" and shown["image"] == ""
    assert shown["os-extended-volumes:volumes_attached"] == [
        {"id": vid, "delete_on_termination": False}]
    volume = volumes.get(f"/volumes/{vid}").json()["volume"]
    assert volume["status"] == "in-use"
    assert [a["server_id"] for a in volume["attachments"]] == [server["id"]]
    busy = volumes.delete(f"/volumes/{vid}", raise_exc=False)
    assert busy.status_code == 400 and "attached" in busy.json()["badRequest"]["message"]
    again = compute.post("/servers", json={"server": {
        "name": "twice", "flavorRef": "1", "block_device_mapping_v2": [
            {"boot_index": 0, "uuid": vid, "source_type": "volume",
             "destination_type": "volume"}]}}, raise_exc=False)
    assert again.status_code == 400 and "Currently in 'in-use'" in again.text

    compute.delete(f"/servers/{server['id']}")
    wait_gone(compute, server["id"])
    assert wait_volume(volumes, vid, "available")["attachments"] == []
    volumes.delete(f"/volumes/{vid}")
    wait_for(lambda: volumes.get(f"/volumes/{vid}", raise_exc=False).status_code == 404)


def test_openstacksdk_makes_waits_for_and_deletes_a_volume(zd, image_id):
    """The stock client finds Cinder by discovery and parses its bodies and errors."""
    import openstack
    config = openstack.config.OpenStackConfig(config_files=[str(zd.clouds_yaml)])
    sdk = openstack.connection.Connection(config=config.get_one(CLOUD))
    made = sdk.block_storage.create_volume(size=1, name="sdk", image_id=image_id)
    made = sdk.block_storage.wait_for_status(made, "available", interval=0.2, wait=60)
    assert made.is_bootable and made.size == 1
    with pytest.raises(openstack.exceptions.HttpException) as caught:
        sdk.block_storage.create_volume(size=5000)
    assert caught.value.status_code == 413
    assert "exceeds allowed gigabytes quota" in str(caught.value)
    sdk.block_storage.delete_volume(made)
    sdk.block_storage.wait_for_delete(made, interval=0.2, wait=60)
    assert "volumes" not in zd.leftovers(CLOUD)
