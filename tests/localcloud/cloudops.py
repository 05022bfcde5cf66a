"""What the compute and network tests do as a client: adapters, uploads, waits, port 22.

Everything is chosen from the personality's flags in the written clouds.yaml
and the catalog (which upload path, which network API), never from its name.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

from keystoneauth1 import adapter, session
from swiftclient.service import SwiftService, SwiftUploadObject

from localcloud.personality import load
from localcloud.testing import RunningCloud, personality_file
from tests.localcloud.conftest import OCTET, connection, image_adapter, wait_for


def service(sess: session.Session, lc: RunningCloud, cloud: str, stype: str) -> adapter.Adapter:
    return adapter.Adapter(sess, service_type=stype, interface="public",
                           region_name=lc.config(cloud)["region_name"])


def nova(sess, lc, cloud) -> adapter.Adapter:
    return service(sess, lc, cloud, "compute")


def neutron(sess, lc, cloud) -> adapter.Adapter:
    """Neutron, with the version prefix a stock client adds after discovery."""
    a = service(sess, lc, cloud, "network")
    a.endpoint_override = a.get_endpoint().rstrip("/") + "/v2.0"
    return a


def shape(cloud: str) -> dict:
    return load(cloud).network


def upload_image(lc: RunningCloud, sess: session.Session, cloud: str, path: Path,
                 name: str = "tiny") -> str:
    """Upload ``path`` by the first path this cloud takes; returns the active image's id."""
    p = load(cloud)
    disk_format, container_format = p.disk_formats[0], p.container_formats[0]
    size = path.stat().st_size
    if "put" in p.upload and 2 in p.image_versions:
        glance = image_adapter(sess, lc, cloud, 2)
        image_id = glance.post("/images", json={
            "name": name, "disk_format": disk_format,
            "container_format": container_format}).json()["id"]
        with open(path, "rb") as f:
            glance.put(f"/images/{image_id}/file", data=f, headers=OCTET)
    elif "put" in p.upload:
        glance = image_adapter(sess, lc, cloud, 1)
        headers = {"x-image-meta-name": name, "x-image-meta-disk_format": disk_format,
                   "x-image-meta-container_format": container_format, **OCTET}
        with open(path, "rb") as f:
            headers["x-image-meta-size"] = str(size)
            image_id = glance.post("/images", data=f, headers=headers).json()["image"]["id"]
    else:
        url, token = connection(lc, cloud).get_auth()
        obj = f"{name}-{uuid.uuid4().hex[:6]}"
        with SwiftService({"os_storage_url": url, "os_auth_token": token}) as svc:
            results = list(svc.upload("staging", [SwiftUploadObject(str(path), obj)]))
        assert all(r["success"] for r in results), results
        glance = image_adapter(sess, lc, cloud, 2)
        properties = {"name": name}         # all a name-only cloud takes (the format comes
        if p.task_image_properties != "name":     # from import_from_format)
            properties.update(disk_format=disk_format, container_format=container_format)
        task = glance.post("/tasks", json={"type": "import", "input": {
            "import_from": f"staging/{obj}", "import_from_format": disk_format,
            "image_properties": properties}}).json()
        def finished():
            found = glance.get(f"/tasks/{task['id']}").json()
            return found if found["status"] in ("success", "failure") else None
        done = wait_for(finished, timeout=60 + size / 20e6)
        assert done["status"] == "success", done
        image_id = done["result"]["image_id"]
        connection(lc, cloud).delete_object("staging", obj)
        connection(lc, cloud).delete_container("staging")
    return image_id


def delete_image(lc, sess, cloud: str, image_id: str) -> None:
    p = load(cloud)
    glance = image_adapter(sess, lc, cloud, 2 if "v2" in p.image_api else 1)
    glance.delete(f"/images/{image_id}")


def wait_status(compute: adapter.Adapter, server_id: str, *wanted: str,
                timeout: float = 120) -> dict:
    def check():
        server = compute.get(f"/servers/{server_id}").json()["server"]
        return server if server["status"] in wanted else None
    return wait_for(check, timeout=timeout, every=0.2)


def wait_gone(compute: adapter.Adapter, server_id: str, timeout: float = 30) -> None:
    wait_for(lambda: compute.get(f"/servers/{server_id}", raise_exc=False).status_code == 404,
             timeout=timeout, every=0.1)


def create_server(compute: adapter.Adapter, image_id: str, name: str = "s",
                  **extra) -> dict:
    body = {"server": {"name": name, "imageRef": image_id, "flavorRef": "1", **extra}}
    return compute.post("/servers", json=body).json()["server"]


def addresses(server: dict, kind: str | None = None) -> list[str]:
    return [a["addr"] for entries in server["addresses"].values() for a in entries
            if kind in (None, a["OS-EXT-IPS:type"])]


def knock(address: str, port: int = 22, timeout: float = 3.0) -> str:
    """What port 22 of ``address`` does: 'banner', 'refused', 'reset', 'silent'."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except OSError:
        return "silent"
    with sock:
        try:
            data = sock.recv(64)
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "silent"
        return "banner" if data.startswith(b"SSH-") else "reset" if not data else "other"


def wait_banner(address: str, timeout: float = 180) -> float:
    began = time.monotonic()
    wait_for(lambda: knock(address) == "banner", timeout=timeout, every=0.5)
    return time.monotonic() - began


def open_port_22(lc: RunningCloud, sess: session.Session, cloud: str,
                 cidr: str = "127.0.0.0/8") -> str | None:
    """Add an ingress rule for tcp/22 to the default group, by the shape's API; its id."""
    net = shape(cloud)
    if not net["security_groups"]:
        return None
    if net["api"] == "nova-network":
        compute = nova(sess, lc, cloud)
        group = next(g for g in compute.get("/os-security-groups").json()["security_groups"]
                     if g["name"] == "default")
        rule = compute.post("/os-security-group-rules", json={"security_group_rule": {
            "parent_group_id": group["id"], "ip_protocol": "tcp", "from_port": 22,
            "to_port": 22, "cidr": cidr}}).json()["security_group_rule"]
        return rule["id"]
    network = neutron(sess, lc, cloud)
    group = network.get("/security-groups", params={"name": "default"}).json()[
        "security_groups"][0]
    return network.post("/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": cidr}}).json()["security_group_rule"]["id"]


def close_port_22(lc, sess, cloud: str, rule_id: str | None) -> None:
    if rule_id is None:
        return
    if shape(cloud)["api"] == "nova-network":
        nova(sess, lc, cloud).delete(f"/os-security-group-rules/{rule_id}")
    else:
        neutron(sess, lc, cloud).delete(f"/security-group-rules/{rule_id}")


def floating_ip(lc, sess, cloud: str, server: dict) -> tuple[str, str]:
    """Allocate a floating IP and associate it, by the shape's API; (id, address)."""
    if shape(cloud)["api"] == "nova-network":
        compute = nova(sess, lc, cloud)
        fip = compute.post("/os-floating-ips", json={}).json()["floating_ip"]
        compute.post(f"/servers/{server['id']}/action",
                     json={"addFloatingIp": {"address": fip["ip"]}})
        return fip["id"], fip["ip"]
    network = neutron(sess, lc, cloud)
    external = network.get("/networks", params={"router:external": "true"}).json()[
        "networks"][0]
    port = network.get("/ports", params={"device_id": server["id"]}).json()["ports"][0]
    fip = network.post("/floatingips", json={"floatingip": {
        "floating_network_id": external["id"], "port_id": port["id"]}}).json()["floatingip"]
    return fip["id"], fip["floating_ip_address"]


def release_floating_ip(lc, sess, cloud: str, fip_id: str) -> None:
    if shape(cloud)["api"] == "nova-network":
        nova(sess, lc, cloud).delete(f"/os-floating-ips/{fip_id}")
    else:
        neutron(sess, lc, cloud).delete(f"/floatingips/{fip_id}")


def zero_disk_personality(directory: Path, base: str = "ovh-like") -> str:
    """``base`` with Cinder and flavors of zero disk: it boots only volume-backed servers."""
    data = load(base).data
    return personality_file(directory, base,
                            services=[*data["services"], "block-storage"],
                            compute={**data["compute"], "zero_disk_flavors": True})


def cinder(sess: session.Session, lc: RunningCloud, cloud: str) -> adapter.Adapter:
    return service(sess, lc, cloud, "block-storage")


def wait_volume(volumes: adapter.Adapter, volume_id: str, *wanted: str,
                timeout: float = 60) -> dict:
    def check():
        found = volumes.get(f"/volumes/{volume_id}").json()["volume"]
        return found if found["status"] in wanted else None
    return wait_for(check, timeout=timeout, every=0.1)
