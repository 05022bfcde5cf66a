"""Nova's side of a new server's networking: the ports it makes or takes, the
security groups it names (``compute_servers.server_create``)."""

from __future__ import annotations

from localcloud import netmodel
from localcloud.cloud import Cloud
from localcloud.http import HTTPFault


def networks(cloud: Cloud, asked: object, groups: list[str] | None) -> list[dict]:
    """Ports for the new server: the asked networks/ports, or the shape's default ones
    (``auto``); none for ``none``."""
    if asked == "none":
        return []
    if asked in (None, "auto", []):
        mine = cloud.credentials["project_id"]
        candidates = [n for n in netmodel.all_of(cloud, "network")
                      if n["_default"] or (not n["_system"] and n["project_id"] == mine
                                           and not n["router:external"])]
        if cloud.personality.network["api"] == "neutron" and len(candidates) > 1:
            raise HTTPFault(409, "Multiple possible networks found, use a Network ID to be "
                                 "more specific.")
        asked = [{"uuid": n["id"]} for n in candidates]
    if not isinstance(asked, list):
        raise HTTPFault(400, "Invalid input for field/attribute networks.")
    ports: list[dict] = []
    try:
        _add_ports(cloud, asked, groups, ports)
    except HTTPFault:
        for port in ports:
            if port.get("_made_by_nova"):
                netmodel.delete(cloud, "port", port["id"])
        raise
    return ports


def _add_ports(cloud: Cloud, asked: list, groups: list[str] | None, ports: list[dict]) -> None:
    for entry in asked:
        if not isinstance(entry, dict):
            raise HTTPFault(400, "Invalid input for field/attribute networks.")
        if entry.get("port"):
            port = netmodel.get(cloud, "port", entry["port"])
            if port is None:
                raise HTTPFault(400, f"Port {entry['port']} could not be found.")
            if port["device_id"]:
                raise HTTPFault(409, f"Port {port['id']} is still in use.")
            ports.append(port)
            continue
        network = netmodel.get(cloud, "network", entry.get("uuid"))
        if network is None:
            raise HTTPFault(400, f"Network {entry.get('uuid')} could not be found.")
        port = netmodel.new_port(cloud, network, security_groups=groups,
                                 fixed_ip=entry.get("fixed_ip"))
        port["_made_by_nova"] = True
        ports.append(port)


def groups(cloud: Cloud, asked: object) -> list[str] | None:
    if not cloud.personality.network["security_groups"] or not asked:
        return None
    if not isinstance(asked, list):
        raise HTTPFault(400, "Invalid input for field/attribute security_groups.")
    found = []
    for entry in asked:
        name = entry.get("name") if isinstance(entry, dict) else None
        group = next((g for g in netmodel.all_of(cloud, "secgroup")
                      if name in (g["name"], g["id"])), None)
        if group is None:
            raise HTTPFault(400, f"Security group {name} not found for project "
                                 f"{cloud.credentials['project_id']}.")
        found.append(group["id"])
    return found
