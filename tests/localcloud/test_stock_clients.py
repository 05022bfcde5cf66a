"""Stock clients, unmodified, against the shapes a real cloud would let them use.

openstacksdk: create_image by each mechanism its config selects (v2 PUT,
glance-direct, Swift + task for the task-only shape), image list and delete,
object upload (segmented too). The openstack CLI: image create, image list,
object create. Not here: openstacksdk's Glance v1 create_image, which sends the
metadata as a JSON body that Glance v1 takes for image data, so a real v1
cloud refuses it just as the HP-like one does ("Disk format is not specified").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openstack
import pytest
from openstack import config as os_config

from tests.localcloud.conftest import image_adapter, md5, qcow2_bytes, vhd_bytes, wait_for

# the stock clients' own deprecation and vendor-profile warnings are theirs, not ours
pytestmark = pytest.mark.filterwarnings("ignore")
OPENSTACK_CLI = Path(sys.executable).parent / "openstack"


def connect(lc, cloud: str) -> openstack.connection.Connection:
    loader = os_config.OpenStackConfig(config_files=[str(lc.clouds_yaml)])
    return openstack.connection.Connection(config=loader.get_one(cloud))


@pytest.mark.parametrize("cloud, data, options", [
    ("dreamhost-like", qcow2_bytes, {"disk_format": "raw"}),
    ("ovh-like", qcow2_bytes, {"disk_format": "qcow2"}),
    ("auro-like", qcow2_bytes, {"disk_format": "qcow2"}),
    ("vexxhost-like", qcow2_bytes, {"disk_format": "qcow2", "use_import": True}),
    ("rackspace-like", vhd_bytes, {}),
])
def test_openstacksdk_create_list_delete_image(lc, tmp_path, cloud, data, options):
    conn = connect(lc, cloud)
    content = data()
    path = tmp_path / "image"
    path.write_bytes(content)
    image = conn.image.create_image(name=f"sdk-{cloud}", filename=str(path), wait=True,
                                    timeout=30, **options)
    image = wait_for(lambda: (lambda i: i if i.status == "active" else None)(
        conn.image.get_image(image.id)))
    assert image.status == "active" and image.checksum == md5(content)
    assert [i.name for i in conn.image.images()] == [f"sdk-{cloud}"]
    conn.image.delete_image(image)
    assert list(conn.image.images()) == []
    leftovers = lc.leftovers(cloud)
    # after a task upload the sdk deletes its object but keeps its "images" container
    assert [c["name"] for c in leftovers.pop("containers", [])] in ([], ["images"])
    assert leftovers == {}
    for container in conn.object_store.containers():
        conn.object_store.delete_container(container)


def test_openstacksdk_object_upload_plain_and_segmented(lc, tmp_path):
    conn = connect(lc, "ovh-like")
    content = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(content)
    conn.object_store.create_container("sdk")
    conn.create_object("sdk", "plain", filename=str(path))
    conn.create_object("sdk", "segmented", filename=str(path), segment_size=100_000)
    found = lc.resources("ovh-like")
    assert {o["name"]: o["large_object"] for o in found["objects"]} == {
        "plain": None, "segmented": "slo"}
    assert len(found["segments"]) == 3
    for name in ("plain", "segmented"):
        assert conn.object_store.download_object(name, container="sdk") == content
    conn.delete_object("sdk", "plain")
    conn.delete_object("sdk", "segmented")
    for container in conn.object_store.containers():
        conn.object_store.delete_container(container)
    assert lc.leftovers("ovh-like") == {}


def test_openstacksdk_lists_and_deletes_on_a_v1_cloud(lc, sessions):
    glance = image_adapter(sessions["hp-like"], lc, "hp-like", 1)
    glance.post("/images", data=qcow2_bytes(), headers={
        "x-image-meta-name": "v1-made", "x-image-meta-disk-format": "qcow2",
        "x-image-meta-container-format": "bare", "Content-Type": "application/octet-stream"})
    conn = connect(lc, "hp-like")
    images = list(conn.image.images())
    assert [(i.name, i.status) for i in images] == [("v1-made", "active")]
    conn.image.delete_image(images[0])
    assert lc.leftovers("hp-like") == {}


def openstack_cli(lc, cloud: str, *args: str) -> str:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(lc.clouds_yaml), OS_CLOUD=cloud,
               PYTHONWARNINGS="ignore")
    done = subprocess.run([str(OPENSTACK_CLI), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_openstack_cli_image_create_and_list(lc, tmp_path):
    content = os.urandom(200_000)
    (tmp_path / "disk.raw").write_bytes(content)
    created = json.loads(openstack_cli(
        lc, "dreamhost-like", "image", "create", "--file", str(tmp_path / "disk.raw"),
        "--disk-format", "raw", "--container-format", "bare", "cli-image", "-f", "json"))
    assert created["status"] == "active" and created["checksum"] == md5(content)
    listed = json.loads(openstack_cli(lc, "dreamhost-like", "image", "list", "-f", "json"))
    assert [(i["Name"], i["Status"]) for i in listed] == [("cli-image", "active")]
    openstack_cli(lc, "dreamhost-like", "image", "delete", "cli-image")
    assert lc.leftovers("dreamhost-like") == {}


def test_openstack_cli_image_create_with_import(lc, tmp_path):
    (tmp_path / "disk.qcow2").write_bytes(qcow2_bytes())
    created = json.loads(openstack_cli(
        lc, "vexxhost-like", "image", "create", "--file", str(tmp_path / "disk.qcow2"),
        "--disk-format", "qcow2", "--import", "cli-import", "-f", "json"))
    conn = connect(lc, "vexxhost-like")
    wait_for(lambda: conn.image.get_image(created["id"]).status == "active")
    conn.image.delete_image(created["id"])


def test_openstack_cli_object_create(lc, tmp_path):
    (tmp_path / "payload").write_bytes(b"hello swift")
    openstack_cli(lc, "hp-like", "container", "create", "cli")
    made = json.loads(openstack_cli(lc, "hp-like", "object", "create", "cli",
                                    str(tmp_path / "payload"), "--name", "obj", "-f", "json"))
    assert made[0]["etag"] == md5(b"hello swift")
    conn = connect(lc, "hp-like")
    assert conn.object_store.download_object("obj", container="cli") == b"hello swift"
    conn.delete_object("cli", "obj")
    conn.object_store.delete_container("cli")
    assert lc.leftovers("hp-like") == {}
