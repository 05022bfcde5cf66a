"""The metadata service: what it answers, and that only a guest's own namespace reaches it.

The namespace tests make real network namespaces (root) and talk HTTP from
inside them, as qemu's user network does for its guest; no guest boots here
(tests/localcloud/test_boot.py boots the tiny image without a config drive).
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from localcloud import configdrive, metadata, netns
from localcloud.guests import BootSpec, qemu_argv

SERVER = {"id": "6f1c5b0e-4a43-4d0e-9a8e-2d3f6b7c8a90", "name": "vm-a", "tenant_id": "p1"}
KEYS = {"k1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA vm-a@test"}


def docs(server=SERVER, keys=KEYS, user_data=None):
    net = configdrive.network_data("52:54:00:00:00:01", "port-1", "net-1", static=False)
    return metadata.documents(configdrive.files(server, keys, net, user_data), user_data)


@pytest.mark.parametrize("path, expect", [
    ("/openstack", "2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\nlatest"),
    ("/openstack/latest/", "meta_data.json\nnetwork_data.json\nvendor_data.json\n"
                           "vendor_data2.json"),
    ("/latest/meta-data/", "hostname\ninstance-id\nlocal-hostname\nplacement/\npublic-keys/"),
    ("/latest/meta-data/public-keys/", "0=k1"),
    ("/latest/meta-data/public-keys/0/openssh-key", KEYS["k1"]),
    ("/2009-04-04/meta-data/instance-id", SERVER["id"]),
    ("/latest/meta-data/placement/availability-zone", "nova"),
])
def test_the_paths_cloud_init_walks(path, expect):
    assert metadata.answer(docs(), path) == (200, expect.encode())


def test_meta_data_carries_the_instances_keys_and_identity():
    status, body = metadata.answer(docs(), "/openstack/latest/meta_data.json")
    meta = json.loads(body)
    assert status == 200 and meta["public_keys"] == KEYS
    assert (meta["uuid"], meta["hostname"]) == (SERVER["id"], "vm-a")
    net = json.loads(metadata.answer(docs(), "/openstack/latest/network_data.json")[1])
    assert net["networks"][0]["type"] == "ipv4_dhcp"


def test_user_data_only_when_given_and_unknown_paths_are_404():
    assert metadata.answer(docs(), "/openstack/latest/user_data")[0] == 404
    with_ud = docs(user_data=b"#!/bin/sh\necho hi\n")
    assert metadata.answer(with_ud, "/openstack/latest/user_data") == (200, b"#!/bin/sh\necho hi\n")
    assert metadata.answer(with_ud, "/latest/user-data")[0] == 200
    assert metadata.answer(docs(keys={}), "/latest/meta-data/public-keys/")[0] == 404


def test_qemu_presents_nova_smbios_and_is_unrestricted_only_in_a_namespace(tmp_path):
    spec = BootSpec(image=tmp_path / "i", disk_format="raw", memory_mb=512, cpus=1,
                    mac="52:54:00:00:00:01")
    inside = qemu_argv(spec, [], tmp_path / "o", tmp_path / "c", 4000, SERVER["id"], True)
    nic = inside[inside.index("-nic") + 1]
    assert "restrict=off" in nic and "hostfwd=tcp:127.0.0.1:2222-:22" in nic
    smbios = inside[inside.index("-smbios") + 1]
    assert "product=OpenStack Nova" in smbios and f"uuid={SERVER['id']}" in smbios
    outside = qemu_argv(spec, [], tmp_path / "o", tmp_path / "c", 4000, "not-a-uuid")
    nic = outside[outside.index("-nic") + 1]
    assert "restrict=on" in nic and "hostfwd=tcp:127.0.0.1:4000-:22" in nic
    assert "-smbios" not in outside


async def _get(ns: netns.Namespace, path: str) -> tuple[int, bytes]:
    sock = await ns.connect((netns.METADATA_ADDRESS, 80))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    writer.close()
    return int(head.split()[1]), body


def test_each_namespace_reaches_its_own_metadata_and_the_host_none():
    other = dict(SERVER, id="0a0b0c0d-0000-4000-8000-000000000002", name="vm-b")
    other_keys = {"k2": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB vm-b@test"}

    async def scenario():
        spaces, seen = [], {0: [], 1: []}
        try:
            for i, d in enumerate((docs(), docs(other, other_keys))):
                ns = await netns.Namespace.create()
                spaces.append(ns)
                sock = await ns.listen((netns.METADATA_ADDRESS, 80))
                await metadata.serve(sock, d, seen[i].append)
            metas = [json.loads((await _get(ns, "/openstack/latest/meta_data.json"))[1])
                     for ns in spaces]
            missing = await _get(spaces[0], "/openstack/2099-01-01/meta_data.json")
            return metas, missing, seen
        finally:
            for ns in spaces:
                ns.close()
    metas, missing, seen = asyncio.run(scenario())
    assert [m["uuid"] for m in metas] == [SERVER["id"], other["id"]]
    assert [m["public_keys"] for m in metas] == [KEYS, other_keys]
    assert missing[0] == 404
    assert seen[0] == ["/openstack/latest/meta_data.json",
                       "/openstack/2099-01-01/meta_data.json"]
    assert seen[1] == ["/openstack/latest/meta_data.json"]
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True,
                          check=True).stdout
    assert netns.METADATA_ADDRESS not in host               # never on the host's interfaces


def test_the_relay_carries_the_hosts_loopback_into_the_namespace():
    async def scenario():
        ns = await netns.Namespace.create()
        try:
            async def echo(reader, writer):
                writer.write(b"SSH-2.0-inside " + await reader.readline())
                await writer.drain()
                writer.close()
            inner = await asyncio.start_server(echo, sock=await ns.listen(
                netns.GUEST_SSH_FORWARD))
            relay = await netns.relay(ns, netns.GUEST_SSH_FORWARD)
            port = relay.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\n")
            answer = await reader.read()
            writer.close()
            relay.close()
            inner.close()
            return answer
        finally:
            ns.close()
    assert asyncio.run(scenario()) == b"SSH-2.0-inside hello\n"
