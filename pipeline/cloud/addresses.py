"""Pure decisions for a test boot: flavor, network, floating IP, the external address.

Everything here works on the JSON the APIs return (Nova servers and flavors,
Neutron networks, ports and routers) plus a few profile values, so each shape
of the talks is one row of a table-driven test.  The external-address logic
follows openstacksdk's (``get_server_external_ipv4``, ``_needs_floating_ip``,
``_find_floating_network_by_router``): a port on a ``router:external``
network, then the ``public`` address key, then an ``OS-EXT-IPS:type:
floating`` address, then any routable address; a floating IP is made only
when none of those exists and the profile or the addresses call for one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.core.errors import BootError, ConfigError

# How the external address was found; VerifyRecord.address_source is one of these.
ACCESS_IPV4 = "access-ipv4"
EXTERNAL_PORT = "external-network-port"
PUBLIC_KEY = "public-network"
FLOATING = "floating-ip"
ROUTABLE = "routable-address"
FLOATING_CREATED = {"neutron": "neutron-floating-ip-created",
                    "nova-network": "nova-network-floating-ip-created"}

Json = Mapping[str, Any]
NOVA_DEFAULT_POOL = "nova"      # Nova's default_floating_pool (nova/conf/neutron.py)


def _ipv4(text: Any) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        return None
    return address if address.version == 4 else None


def is_routable(address: str, routable_cidrs: Iterable[str] = ()) -> bool:
    """Globally routable, or inside a range the profile says is routable there."""
    ip = _ipv4(address)
    if ip is None:
        return False
    if ip.is_global:
        return True
    return any(ip in ipaddress.ip_network(c, strict=False) for c in routable_cidrs)


def _entries(server: Json) -> list[tuple[str, Json]]:
    """(network name, address entry) for every IPv4 address Nova lists."""
    found = []
    for name, entries in (server.get("addresses") or {}).items():
        for entry in entries or []:
            if _ipv4(entry.get("addr")) is not None and entry.get("version", 4) == 4:
                found.append((name, entry))
    return found


def external_ipv4(server: Json, ports: Sequence[Json] | None = None,
                  networks: Sequence[Json] | None = None,
                  routable_cidrs: Iterable[str] = ()) -> tuple[str, str] | None:
    """The address the outside reaches ``server`` by, and how it was found; None if none.

    ``ports``/``networks`` are Neutron's view (None on clouds without Neutron).
    """
    routable_cidrs = list(routable_cidrs)
    access = server.get("accessIPv4")
    if access and _ipv4(access) is not None:
        return str(access), ACCESS_IPV4
    if ports is not None and networks is not None:
        external = {n["id"] for n in networks if n.get("router:external")}
        for port in ports:
            if port.get("network_id") in external:
                for fixed in port.get("fixed_ips") or []:
                    if _ipv4(fixed.get("ip_address")) is not None:
                        return fixed["ip_address"], EXTERNAL_PORT
    entries = _entries(server)
    for name, entry in entries:
        if name == "public":
            return entry["addr"], PUBLIC_KEY
    for _, entry in entries:
        if entry.get("OS-EXT-IPS:type") == "floating":
            return entry["addr"], FLOATING
    for _, entry in entries:
        if is_routable(entry["addr"], routable_cidrs):
            return entry["addr"], ROUTABLE
    return None


def needs_floating_ip(policy: str, found: tuple[str, str] | None, server: Json,
                      floating_available: bool) -> bool:
    """Whether to make a floating IP: never when an external address exists.

    ``policy`` is the profile's ``network.floating_ip`` (required, auto, never);
    ``auto`` asks for one when the server has only fixed addresses and the
    cloud has somewhere to take a floating IP from (openstacksdk's rule).
    """
    if policy == "never" or found is not None:
        return False
    if policy == "required":
        return True
    has_fixed = any(e.get("OS-EXT-IPS:type", "fixed") == "fixed" for _, e in _entries(server))
    return has_fixed and floating_available


def nat_destination(ports: Sequence[Json], networks: Sequence[Json]) -> tuple[str, str] | None:
    """(port id, fixed IPv4) a floating IP should point at: a port off the external networks."""
    external = {n["id"] for n in networks if n.get("router:external")}
    for port in ports:
        if port.get("network_id") in external:
            continue
        for fixed in port.get("fixed_ips") or []:
            if _ipv4(fixed.get("ip_address")) is not None:
                return port["id"], fixed["ip_address"]
    return None


def choose_floating_network(networks: Sequence[Json], name: str | None = None,
                            routers: Sequence[Json] = ()) -> Json:
    """The ``router:external`` network to take a floating IP from.

    The profile's ``network.floating_network`` wins; otherwise the only
    external network, or the one a router uses as its gateway.
    """
    external = [n for n in networks if n.get("router:external")]
    if name:
        for net in external:
            if name in (net.get("name"), net.get("id")):
                return net
        raise ConfigError(f"no external network {name!r} (external: "
                          f"{_names(external) or 'none'})", key="network.floating_network")
    if len(external) == 1:
        return external[0]
    gateways = [(r.get("external_gateway_info") or {}).get("network_id") for r in routers
                if r.get("admin_state_up", True)]
    by_router = [n for n in external if n["id"] in gateways]
    if len(by_router) == 1:
        return by_router[0]
    if not external:
        raise BootError("the cloud has no external network to take a floating IP from")
    raise ConfigError(f"several external networks ({_names(external)}); name one in the "
                      "profile", key="network.floating_network")


def choose_floating_pool(pools: Sequence[str], name: str | None = None) -> str | None:
    """The nova-network pool to take a floating IP from; None leaves it to Nova.

    The profile's ``network.floating_network`` wins; otherwise the only pool.
    Nova's own default (``default_floating_pool``, ``nova``) is asked for only
    when a pool of that name exists: elsewhere it is a 404 "Floating IP pool not
    found".
    """
    if name:
        if name in pools:
            return name
        raise ConfigError(f"no floating-IP pool {name!r} (pools: "
                          f"{', '.join(pools) or 'none'})", key="network.floating_network")
    if len(pools) == 1:
        return pools[0]
    if NOVA_DEFAULT_POOL in pools:
        return None
    if not pools:
        raise BootError("the cloud has no floating-IP pool")
    raise ConfigError(f"several floating-IP pools ({', '.join(pools)}); name one in the "
                      "profile", key="network.floating_network")


def choose_network(networks: Sequence[Json] | None, name: str | None = None,
                   external: str = "floating") -> str | None:
    """The network id to boot on, or None to let the cloud choose.

    The profile's ``network.network`` wins (on nova-network too: ``networks`` are
    then os-tenant-networks', named by label).  Otherwise, among the networks a
    server could boot on (not ``router:external``, unless the cloud's way out
    is an external network), a single one is taken; when several exist the
    cloud requires one to be named, so the project's own network is taken if
    it is the only one, and anything else is a configuration error.
    """
    if networks is None:
        if name:
            raise ConfigError(f"network {name!r} cannot be chosen without a network API",
                              key="network.network")
        return None
    if name:
        for net in networks:
            if name in (net.get("name"), net.get("id")):
                return net["id"]
        raise ConfigError(f"no network {name!r} (networks: {_names(networks) or 'none'})",
                          key="network.network")
    candidates = [n for n in networks if n.get("status", "ACTIVE") == "ACTIVE"
                  and bool(n.get("router:external")) == (external == "external-network")]
    if len(candidates) <= 1:
        return candidates[0]["id"] if candidates else None
    own = [n for n in candidates if not n.get("shared")]
    if len(own) == 1:
        return own[0]["id"]
    raise ConfigError(f"several networks to boot on ({_names(candidates)}); name one in the "
                      "profile", key="network.network")


def choose_flavor(flavors: Sequence[Json], min_ram_mb: int = 0, min_disk_gb: int = 0,
                  name: str | None = None, volume_backed: bool = False) -> Json:
    """A named flavor, or the smallest enabled one with enough RAM and disk.

    An image-backed server never gets a flavor whose root disk is 0 GiB unless the
    profile names it: Nova boots those for admins only (403 "Only volume-backed
    servers are allowed for flavors with zero disk"), and a cloud may list one
    beside its disked flavors (docs/vendor-behaviour.md "Boot from volume").
    """
    if name:
        for flavor in flavors:
            if name in (flavor.get("name"), flavor.get("id")):
                return flavor
        raise ConfigError(f"no flavor {name!r} (flavors: {_names(flavors) or 'none'})",
                          key="compute.flavor")
    least_disk = min_disk_gb if volume_backed else max(min_disk_gb, 1)
    fitting = [f for f in flavors if not f.get("OS-FLV-DISABLED:disabled")
               and int(f.get("ram") or 0) >= min_ram_mb
               and (int(f.get("disk") or 0) >= least_disk)]
    if not fitting:
        zero_disk = not volume_backed and any(
            int(f.get("ram") or 0) >= min_ram_mb and not int(f.get("disk") or 0)
            for f in flavors if not f.get("OS-FLV-DISABLED:disabled"))
        why = (": the ones with the RAM have a 0 GiB root disk, which boots only from a "
               "volume (compute.boot_from_volume)" if zero_disk else "")
        raise BootError(f"no flavor has {min_ram_mb} MB RAM and {least_disk} GB disk "
                        f"(flavors: {_names(flavors) or 'none'}){why}")
    return min(fitting, key=lambda f: (int(f.get("ram") or 0), int(f.get("disk") or 0),
                                       int(f.get("vcpus") or 0), str(f.get("name"))))


def rule_cidr(source: str | None, target: str, check_cidr: str | None = None) -> str:
    """The narrowest range to open the check port to.

    The checker's own address (``/32``) when the cloud sees it unchanged: it
    is global, or it is in the same kind of private scope as the target
    (loopback to loopback, private to private: no NAT between).  Otherwise
    the profile's ``check_cidr``, and only failing that the whole Internet.
    """
    src, dst = _ipv4(source), _ipv4(target)
    if src is not None and not src.is_unspecified:
        if src.is_global or (dst is not None and (
                (src.is_loopback and dst.is_loopback)
                or (src.is_private and dst.is_private and not dst.is_loopback
                    and not src.is_loopback))):
            return f"{src}/32"
    return check_cidr or "0.0.0.0/0"


def _names(items: Iterable[Json]) -> str:
    return ", ".join(str(i.get("name") or i.get("id")) for i in items)
