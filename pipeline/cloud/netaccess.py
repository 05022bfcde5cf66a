"""The way in for a test boot: a security group and rule, a floating IP, and their removal.

Two APIs do the same things: Neutron (``security-groups``, ``security-group-
rules``, ``floatingips``) and nova-network through Nova (``os-security-groups``,
``os-security-group-rules``, ``os-floating-ips`` and ``addFloatingIp``).
``NetworkAccess`` picks one by the profile's ``network.api`` and remembers
what it made, so ``release`` removes exactly that: never a floating IP or
rule it found.  What it makes is also written to a ``Journal`` at once, so
``pipeline.cloud.cleanup`` can find it after a crash.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keystoneauth1 import adapter as ksa_adapter

from pipeline.cloud import addresses
from pipeline.cloud.compute import Nova, NovaApi
from pipeline.cloud.session import Api
from pipeline.core import errors
from pipeline.core.waiting import iterate_timeout
from pipeline.settings.clouds import Cloud

LOG = logging.getLogger(__name__)


class Neutron(Api):
    """Neutron v2.0 at ``endpoint()`` (asked on first use; None: the adapter's own)."""

    service = "Neutron"

    def __init__(self, ad: ksa_adapter.Adapter, where: str,
                 endpoint: Callable[[], str | None] = lambda: None):
        super().__init__(ad, where)
        self._endpoint = endpoint

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        root = self._endpoint()
        if root:
            kwargs.setdefault("endpoint_override", root)
        return super().call(method, url, **kwargs)

    def list(self, collection: str, **params: Any) -> list[dict]:
        key = collection.replace("-", "_")
        return self.json("GET", collection, key, params=params or None)

    def networks(self) -> list[dict]:
        return self.list("networks")

    def ports(self, device_id: str) -> list[dict]:
        return self.list("ports", device_id=device_id)

    def routers(self) -> list[dict]:
        """Routers, or [] where the router extension is absent."""
        resp = self.call("GET", "routers", ok=(404,))
        return [] if resp.status_code == 404 else resp.json().get("routers", [])

    def create(self, collection: str, member: str, body: dict) -> dict:
        return self.json("POST", collection, member, json={member: body})

    def delete(self, collection: str, rid: str) -> bool:
        return self.call("DELETE", f"{collection}/{rid}", ok=(404,),
                         step="cleanup").status_code != 404


class NovaNetwork(NovaApi):
    """nova-network's proxies in Nova: same adapter and microversion as ``Nova``; they
    answer only up to 2.35, which ``versions.choose_compute_version`` keeps to."""

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        if not self.version.proxies:
            raise errors.CloudError(f"Nova {self.version.microversion} has no nova-network "
                                    f"proxy {url.split('/')[0]}", where=self.where)
        return super().call(method, url, **kwargs)

    def floating_ips(self) -> list[dict]:
        return self.json("GET", "os-floating-ips", "floating_ips")

    def networks(self) -> list[dict]:
        """The project's networks (os-tenant-networks), named by their label as Neutron's."""
        return [{"id": n["id"], "name": n.get("label"), "status": "ACTIVE"}
                for n in self.json("GET", "os-tenant-networks", "networks")]

    def pools(self) -> list[str]:
        """The floating-IP pools' names (os-floating-ip-pools)."""
        return [p["name"] for p in self.json("GET", "os-floating-ip-pools",
                                             "floating_ip_pools")]

    def security_groups(self) -> list[dict]:
        return self.json("GET", "os-security-groups", "security_groups")

    def delete(self, collection: str, rid: str) -> bool:
        return self.call("DELETE", f"{collection}/{rid}", ok=(404,),
                         step="cleanup").status_code != 404


@dataclass
class Clients:
    """The Adapters of one cloud: compute always, network where Neutron is the API."""

    nova: Nova
    neutron: Neutron | None
    nova_network: NovaNetwork | None


def checker_address(target: str, port: int = 22) -> str | None:
    """The local address a connection to ``target`` leaves from (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((target, port))
            return sock.getsockname()[0]
    except OSError:
        return None


@dataclass
class Made:
    """What one verify run made, as (collection, id) per kind."""

    groups: list[tuple[str, str]] = field(default_factory=list)
    rules: list[tuple[str, str]] = field(default_factory=list)
    floating_ips: list[tuple[str, str]] = field(default_factory=list)


Record = Callable[[str, str, str], None]      # (kind, collection, id) -> journal it


class NetworkAccess:
    """Security group, check rule and floating IP for one server, by the cloud's API."""

    def __init__(self, cloud: Cloud, c: Clients, record: Record | None = None):
        self.where = cloud.name
        self.api = cloud.profile.network.api
        self.c = c
        self.record = record or (lambda kind, collection, rid: None)
        self.made = Made()

    def _remember(self, kind: str, collection: str, rid: str) -> None:
        getattr(self.made, kind).append((collection, rid))
        self.record(kind, collection, rid)

    # --- security group and the check rule --------------------------------

    def create_group(self, name: str, description: str) -> str:
        """A group of our own for the server; returns its name for the create request."""
        if self.c.neutron is not None:
            group = self.c.neutron.create("security-groups", "security_group",
                                          {"name": name, "description": description})
            self._remember("groups", "security-groups", group["id"])
        else:
            group = self.c.nova_network.json(
                "POST", "os-security-groups", "security_group",
                json={"security_group": {"name": name, "description": description}})
            self._remember("groups", "os-security-groups", str(group["id"]))
        return name

    def open_port(self, port: int, cidr: str, description: str) -> str:
        """Let ``cidr`` reach TCP ``port`` of the server, through our group."""
        (_, group_id), = self.made.groups
        if self.c.neutron is not None:
            rule = self.c.neutron.create("security-group-rules", "security_group_rule", {
                "security_group_id": group_id, "direction": "ingress", "ethertype": "IPv4",
                "protocol": "tcp", "port_range_min": port, "port_range_max": port,
                "remote_ip_prefix": cidr, "description": description})
            collection = "security-group-rules"
        else:
            rule = self.c.nova_network.json(
                "POST", "os-security-group-rules", "security_group_rule",
                json={"security_group_rule": {"parent_group_id": group_id,
                                              "ip_protocol": "tcp", "from_port": port,
                                              "to_port": port, "cidr": cidr}})
            collection = "os-security-group-rules"
        self._remember("rules", collection, str(rule["id"]))
        LOG.info("%s: opened tcp/%d to %s", self.where, port, cidr)
        return str(rule["id"])

    def close_ports(self) -> None:
        while self.made.rules:
            collection, rid = self.made.rules[-1]
            self._delete(collection, rid)
            self.made.rules.pop()

    # --- floating IPs -------------------------------------------------------

    def floating_ip(self, server: dict, ports: Sequence[dict] | None,
                    networks: Sequence[dict] | None, pool: str | None,
                    description: str) -> tuple[str, str]:
        """Make a floating IP, point it at the server; (address, how)."""
        if self.c.neutron is not None:
            target = addresses.nat_destination(ports or [], networks or [])
            if target is None:
                raise errors.ReachabilityError(f"server {server['id']} has no port a "
                                               "floating IP can point at", where=self.where)
            network = addresses.choose_floating_network(networks or [], pool,
                                                        self.c.neutron.routers())
            fip = self.c.neutron.create("floatingips", "floatingip", {
                "floating_network_id": network["id"], "port_id": target[0],
                "fixed_ip_address": target[1], "description": description})
            self._remember("floating_ips", "floatingips", fip["id"])
            address = fip["floating_ip_address"]
        elif self.c.nova_network is not None:
            pool = addresses.choose_floating_pool(self.c.nova_network.pools(), pool)
            fip = self.c.nova_network.json("POST", "os-floating-ips", "floating_ip",
                                           json={"pool": pool} if pool else {})
            self._remember("floating_ips", "os-floating-ips", str(fip["id"]))
            address = fip["ip"]
            self.c.nova.server_action(server["id"], "addFloatingIp", {"address": address})
        else:
            raise errors.ReachabilityError("the profile asks for a floating IP but the cloud "
                                           "has no network API", where=self.where)
        LOG.info("%s: floating IP %s for server %s", self.where, address, server["id"])
        return address, addresses.FLOATING_CREATED[self.api]

    # --- undoing ------------------------------------------------------------

    def release(self, group_timeout: float = 120.0, poll: float = 2.0) -> list[str]:
        """Remove rules, floating IPs and groups we made (the server must be gone first).

        Every removal is tried; returns what could not be removed, one line each.
        """
        failed = []
        steps = [(lambda c=c, r=r: self._delete(c, r), c, r) for c, r in self.made.rules]
        steps += [(lambda c=c, r=r: self._delete(c, r), c, r)
                  for c, r in self.made.floating_ips]
        steps += [(lambda c=c, r=r: delete_group(self._api_of(c), c, r, timeout=group_timeout,
                                                 poll=poll), c, r) for c, r in self.made.groups]
        for step, collection, rid in steps:
            try:
                step()
            except errors.PipelineError as e:
                LOG.warning("%s: cleanup: %s %s: %s", self.where, collection, rid, e)
                failed.append(f"{collection}/{rid}: {e.cause}")
        self.made = Made()
        return failed

    def _api_of(self, collection: str) -> Api:
        return self.c.nova_network if collection.startswith("os-") else self.c.neutron

    def _delete(self, collection: str, rid: str) -> None:
        self._api_of(collection).delete(collection, rid)


def delete_group(api: Api, collection: str, rid: str, *, timeout: float = 120.0,
                 poll: float = 2.0) -> bool:
    """Delete a security group, waiting while a just-deleted server's port still holds it."""
    last: errors.PipelineError | None = None
    try:
        for _ in iterate_timeout(timeout, f"security group {rid} stayed in use", wait=poll,
                                 max_wait=max(poll, 10.0)):
            try:
                return api.delete(collection, rid)
            except (errors.Conflict, errors.BadRequest) as e:    # in use (neutron, nova)
                last = e
    except errors.WaitTimeout as e:
        raise errors.VerifyError(f"security group {rid} could not be deleted: "
                                 f"{last.cause if last else e}", where=api.where,
                                 step="cleanup") from e
    raise AssertionError("unreachable")
