"""OpenStack config drives: the ISO 9660 disk labelled ``config-2`` nova attaches.

A local boot hands the image the same data a cloud would (SSH keys, network
layout, user data), so the image's own first-boot agent (cloud-init, glean)
is exercised exactly as on a cloud.  ``config_drive_files`` is pure: it turns
the instance description into ``{path on the drive: bytes}``;
``write_config_drive`` burns those files with ``genisoimage`` the way nova does.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import tempfile
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import runner
from pipeline.core.errors import ConfigError

GENISOIMAGE = "genisoimage"
LABEL = "config-2"
# Nova writes one directory per metadata version; 2015-10-15 is the first with
# network_data.json, "latest" is what cloud-init and glean read first.
VERSIONS = ("2015-10-15", "latest")
CONTENT_DIR = "openstack/content"


@dataclass(frozen=True)
class NetworkSpec:
    """One NIC as the guest should configure it: DHCP, or a static IPv4 address."""

    mac: str
    dhcp: bool = True
    address: str | None = None  # "10.0.2.15/24" when static
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = 1500
    link_type: str = "phy"


def _stable_uuid(*parts: str) -> str:
    """Ids the drive needs but nobody checks: derived, so the output stays pure."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "imagefleet:" + ":".join(parts)))


def network_data(networks: Sequence[NetworkSpec]) -> dict:
    """``network_data.json``: links (NICs by MAC), networks (L3 on a link), services (DNS)."""
    links, nets, services = [], [], []
    for index, spec in enumerate(networks):
        mac = spec.mac.lower()
        link_id = f"tap{index}"
        link = {"id": link_id, "type": spec.link_type, "ethernet_mac_address": mac,
                "mtu": spec.mtu, "vif_id": _stable_uuid("vif", mac)}
        links.append(link)
        net: dict = {"id": f"network{index}", "link": link_id,
                     "network_id": _stable_uuid("network", mac)}
        if spec.dhcp:
            net["type"] = "ipv4_dhcp"
        else:
            if not spec.address or "/" not in spec.address:
                raise ConfigError("a static network needs an address with a prefix "
                                  f"(\"10.0.2.15/24\"), got {spec.address!r}",
                                  key=f"networks[{index}].address")
            try:
                iface = ipaddress.IPv4Interface(spec.address)
            except ValueError as e:
                raise ConfigError(f"not an IPv4 address/prefix: {spec.address!r}",
                                  key=f"networks[{index}].address") from e
            net.update(type="ipv4", ip_address=str(iface.ip),
                       netmask=str(iface.network.netmask), routes=[],
                       services=[{"type": "dns", "address": d} for d in spec.dns])
            if spec.gateway:
                net["routes"].append({"network": "0.0.0.0", "netmask": "0.0.0.0",
                                      "gateway": spec.gateway})
        nets.append(net)
        for address in spec.dns:
            service = {"type": "dns", "address": address}
            if service not in services:
                services.append(service)
    return {"links": links, "networks": nets, "services": services}


def meta_data(*, uuid: str, name: str, public_keys: Mapping[str, str],
              hostname: str | None = None, availability_zone: str = "nova",
              launch_index: int = 0, files: Sequence[Mapping[str, str]] = (),
              random_seed: bytes | None = None, meta: Mapping[str, str] | None = None) -> dict:
    """``meta_data.json`` as nova writes it (keys both as a map and as a list)."""
    data = {
        "uuid": uuid,
        "name": name,
        "hostname": hostname or name,
        "launch_index": launch_index,
        "availability_zone": availability_zone,
        "meta": dict(meta or {}),
        "public_keys": dict(public_keys),
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in public_keys.items()],
        "files": [dict(f) for f in files],
        "devices": [],
    }
    if random_seed is not None:
        data["random_seed"] = base64.b64encode(random_seed).decode()
    return data


def _dump(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True).encode()


def config_drive_files(*, uuid: str, name: str, public_keys: Mapping[str, str],
                       networks: Sequence[NetworkSpec] = (),
                       user_data: bytes | str | None = None,
                       injected_files: Mapping[str, bytes] | None = None,
                       hostname: str | None = None, availability_zone: str = "nova",
                       launch_index: int = 0,
                       random_seed: bytes | None = None) -> dict[str, bytes]:
    """Every file of the drive, ``{"openstack/latest/meta_data.json": b"...", ...}``.

    ``injected_files`` maps a guest path to its content (nova's personality
    files): stored under ``openstack/content/NNNN`` and listed in ``files``.
    """
    out: dict[str, bytes] = {}
    listed = []
    for number, (guest_path, content) in enumerate(sorted((injected_files or {}).items())):
        content_path = f"/content/{number:04d}"
        out[f"openstack{content_path}"] = content
        listed.append({"path": guest_path, "content_path": content_path})
    meta = meta_data(uuid=uuid, name=name, public_keys=public_keys, hostname=hostname,
                     availability_zone=availability_zone, launch_index=launch_index,
                     files=listed, random_seed=random_seed)
    per_version = {
        "meta_data.json": _dump(meta),
        "network_data.json": _dump(network_data(networks)),
        "vendor_data.json": _dump({}),
    }
    if user_data is not None:
        per_version["user_data"] = (user_data.encode() if isinstance(user_data, str)
                                    else bytes(user_data))
    for version in VERSIONS:
        for filename, content in per_version.items():
            out[f"openstack/{version}/{filename}"] = content
    out["openstack/latest/vendor_data2.json"] = _dump({})
    return out


def write_config_drive(iso_path: str | os.PathLike, files: Mapping[str, bytes], *,
                       log_path: str | os.PathLike | None = None) -> Path:
    """Write ``files`` into an ISO 9660 image labelled ``config-2`` (Rock Ridge + Joliet).

    Same genisoimage options as nova; the ISO appears only when complete.
    """
    iso_path = Path(iso_path).absolute()
    iso_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="configdrive-", dir=iso_path.parent))
    partial = iso_path.with_name(iso_path.name + ".part")
    try:
        tree = staging / "tree"
        for rel, content in files.items():
            target = (tree / rel).resolve()
            if not target.is_relative_to(tree.resolve()):
                raise ConfigError(f"path escapes the drive: {rel!r}", key="config_drive")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        runner.run([GENISOIMAGE, "-o", str(partial), "-ldots", "-allow-lowercase",
                    "-allow-multidot", "-l", "-publisher", "imagefleet", "-quiet",
                    "-J", "-r", "-V", LABEL, str(tree)],
                   log_path=log_path, step="config-drive")
        os.replace(partial, iso_path)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return iso_path
