"""The config drive Nova attaches: ISO 9660, label ``config-2``, the OpenStack layout.

``openstack/<version>/meta_data.json`` (keys, name, uuid), ``network_data.json``
(from 2015-10-15 on), ``user_data`` when given, vendor data, for each metadata
version a guest agent may ask for, and ``latest``. Static networking describes
the guest side of qemu's user network (10.0.2.15/24), since that is where the
guest really is; the API still shows the 127.x address the cloud handed out.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from localcloud.guests import GUEST_NET

GENISOIMAGE = "genisoimage"
LABEL = "config-2"
VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "latest")
NETWORK_DATA_SINCE = "2015-10-15"


def network_data(mac: str, port_id: str, network_id: str, static: bool) -> dict:
    """``network_data.json`` for the guest's one NIC: DHCP, or static on qemu's user network."""
    link = {"id": f"tap{port_id[:11]}", "type": "ovs", "ethernet_mac_address": mac,
            "mtu": 1500, "vif_id": port_id}
    network: dict = {"id": "network0", "link": link["id"], "network_id": network_id}
    services = []
    if static:
        services = [{"type": "dns", "address": GUEST_NET["dns"]}]
        network.update(type="ipv4", ip_address=GUEST_NET["address"],
                       netmask=GUEST_NET["netmask"],
                       routes=[{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                "gateway": GUEST_NET["gateway"]}],
                       services=services)
    else:
        network["type"] = "ipv4_dhcp"
    return {"links": [link], "networks": [network], "services": services}


def meta_data(server: dict, public_keys: dict[str, str]) -> dict:
    return {"uuid": server["id"], "name": server["name"], "hostname": server["name"],
            "launch_index": 0, "availability_zone": "nova", "project_id": server["tenant_id"],
            "meta": dict(server.get("metadata") or {}), "public_keys": public_keys,
            "keys": [{"name": k, "type": "ssh", "data": v} for k, v in public_keys.items()],
            "devices": [],
            "random_seed": base64.b64encode(os.urandom(512)).decode()}


def files(server: dict, public_keys: dict[str, str], net_data: dict,
          user_data: bytes | None) -> dict[str, bytes]:
    """Every file of the drive, by its path on the drive."""
    out: dict[str, bytes] = {}
    for version in VERSIONS:
        base = f"openstack/{version}"
        out[f"{base}/meta_data.json"] = json.dumps(meta_data(server, public_keys)).encode()
        out[f"{base}/vendor_data.json"] = b"{}"
        if version >= NETWORK_DATA_SINCE:
            out[f"{base}/network_data.json"] = json.dumps(net_data).encode()
            out[f"{base}/vendor_data2.json"] = b"{}"
        if user_data is not None:
            out[f"{base}/user_data"] = user_data
    return out


def write(path: Path, contents: dict[str, bytes]) -> Path:
    """Burn ``contents`` into an ISO at ``path`` with the options Nova passes genisoimage."""
    with tempfile.TemporaryDirectory(prefix="configdrive-", dir=path.parent) as tmp:
        for name, data in contents.items():
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        partial = path.with_suffix(".part")
        argv = [GENISOIMAGE, "-o", str(partial), "-ldots", "-allow-lowercase",
                "-allow-multidot", "-l", "-publisher", "localcloud", "-quiet", "-J", "-r",
                "-V", LABEL, tmp]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"genisoimage exited {done.returncode}: {done.stderr[-300:]}")
        shutil.move(partial, path)
    return path

