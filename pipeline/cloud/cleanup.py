"""What a verify run leaves if it is killed, and the sweeper that removes it.

Everything a verify run makes is recognisably ours: its name starts with
``imagefleet-verify-`` (servers, boot volumes, keypairs, security groups;
Neutron rules and floating IPs carry it as their description) and servers and
volumes also carry the metadata ``imagefleet_managed: "true"``.  nova-network floating IPs have no
name or description, so each run also keeps a journal of the ids it made
(``<work_dir>/journal/<cloud>-<name>.json``), written as soon as each exists.
``sweep`` deletes exactly those, servers first (then the volumes they booted
from are detached), and says what it removed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.cloud.connection import Connection
from pipeline.cloud.marks import BUILD, MANAGED
from pipeline.cloud.netaccess import Clients, delete_group
from pipeline.cloud.session import cloud_errors
from pipeline.cloud.volumes import Cinder
from pipeline.core import atomicfile, errors
from pipeline.settings.clouds import Cloud, file_name

LOG = logging.getLogger(__name__)

PREFIX = "imagefleet-verify-"


def resource_name(build_id: str, token: str | None = None) -> str:
    """``imagefleet-verify-<build_id>-<random>``: one name for everything a run makes."""
    return f"{PREFIX}{build_id}-{token or secrets.token_hex(3)}"


def server_metadata(build_id: str) -> dict[str, str]:
    return {MANAGED: "true", BUILD: build_id}


def is_our_name(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def is_our_server(server: Mapping[str, Any]) -> bool:
    """Named by us and marked by us: a server (or volume) of someone else's never matches
    both."""
    return is_our_name(server.get("name")) and \
        (server.get("metadata") or {}).get(MANAGED) == "true"


class Journal:
    """The ids one run made, on disk as soon as each exists (atomic rewrite)."""

    def __init__(self, directory: str | os.PathLike, cloud: str, name: str):
        self.path = Path(directory) / f"{file_name(cloud)}-{name}.json"
        self.data: dict[str, Any] = {"cloud": cloud, "name": name, "made": []}

    def add(self, kind: str, collection: str, rid: str) -> None:
        self.data["made"].append({"kind": kind, "collection": collection, "id": rid})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomicfile.write_text(self.path, json.dumps(self.data, indent=1))

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def journals(directory: str | os.PathLike | None, cloud: str) -> list[tuple[Path, dict]]:
    if directory is None or not Path(directory).is_dir():
        return []
    found = []
    for path in sorted(Path(directory).glob(f"{file_name(cloud)}-{PREFIX}*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("cloud") == cloud:
            found.append((path, data))
    return found


def sweep(cloud: Cloud, *, connection: Connection | None = None,
          journal_dir: str | os.PathLike | None = None, timeout: float = 300.0,
          poll: float = 2.0) -> dict[str, list[str]]:
    """Delete every leftover of verify runs in ``cloud``; {kind: [names or ids]} removed.

    Run it when no verify is running against the cloud: it cannot tell a
    crashed run's server from a live one.
    """
    if cloud.profile.compute.api == "none":
        return {}
    conn = connection or Connection(cloud)
    c = conn.clients
    removed: dict[str, list[str]] = {"servers": [], "volumes": [], "floating_ips": [],
                                     "security_group_rules": [], "security_groups": [],
                                     "keypairs": []}
    logged = journals(journal_dir, cloud.name)
    with cloud_errors(cloud.name, "cleanup"):
        _servers(c, removed, timeout, poll)
        _volumes(conn.cinder, removed, logged, timeout, poll)
        _network(c, removed, logged, timeout, poll)
        for pair in c.nova.keypairs():
            if is_our_name(pair.get("name")) and c.nova.delete_keypair(pair["name"]):
                removed["keypairs"].append(pair["name"])
    for path, _ in logged:
        path.unlink(missing_ok=True)
    removed = {k: v for k, v in removed.items() if v}
    LOG.info("%s: cleanup removed %s", cloud.name,
             ", ".join(f"{len(v)} {k}" for k, v in removed.items()) or "nothing")
    return removed


def _servers(c: Clients, removed: dict[str, list[str]], timeout: float, poll: float) -> None:
    ours = [s for s in c.nova.servers() if is_our_server(s)]
    for server in ours:
        if c.nova.delete_server(server["id"]):
            removed["servers"].append(server["id"])
    for server in ours:
        c.nova.wait_gone(server["id"], timeout, poll)


def _volumes(cinder: Cinder | None, removed: dict[str, list[str]],
             logged: list[tuple[Path, dict]], timeout: float, poll: float) -> None:
    """Our boot volumes: named and marked by us, or in a journal; after their servers."""
    if cinder is None:
        return
    journaled = {m["id"] for _, data in logged for m in data["made"]
                 if m["collection"] == "volumes"}
    for volume in cinder.volumes():
        if is_our_server(volume) or volume["id"] in journaled:
            if cinder.delete_when_detached(volume["id"], timeout, poll):
                removed["volumes"].append(volume["id"])


def _listed(neutron: Any, collection: str) -> list[dict]:
    """A Neutron listing; [] where the cloud lacks the extension (no L3 router: 404)."""
    try:
        return neutron.list(collection)
    except errors.NotFound:
        return []


def _network(c: Clients, removed: dict[str, list[str]], logged: list[tuple[Path, dict]],
             timeout: float, poll: float) -> None:
    journaled = {(m["collection"], m["id"]) for _, data in logged for m in data["made"]}
    if c.neutron is not None:
        for rule in c.neutron.list("security-group-rules"):
            if is_our_name(rule.get("description")) and \
                    c.neutron.delete("security-group-rules", rule["id"]):
                removed["security_group_rules"].append(rule["id"])
        for fip in _listed(c.neutron, "floatingips"):
            if (is_our_name(fip.get("description")) or ("floatingips", fip["id"]) in journaled) \
                    and c.neutron.delete("floatingips", fip["id"]):
                removed["floating_ips"].append(fip["floating_ip_address"])
        groups = [("security-groups", g) for g in c.neutron.list("security-groups")]
        api = c.neutron
    elif c.nova_network is not None:
        for fip in c.nova_network.floating_ips():
            if ("os-floating-ips", str(fip["id"])) in journaled and \
                    c.nova_network.delete("os-floating-ips", str(fip["id"])):
                removed["floating_ips"].append(fip["ip"])
        groups = [("os-security-groups", g) for g in c.nova_network.security_groups()]
        api = c.nova_network
    else:
        return
    for collection, group in groups:
        if is_our_name(group.get("name")) and \
                delete_group(api, collection, str(group["id"]), timeout=timeout, poll=poll):
            removed["security_groups"].append(group["name"])
