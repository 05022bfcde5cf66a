"""The network state compute and network both serve: networks, subnets, ports, floating IPs,
security groups and their rules, as records in the shared store.

Address plan: cloud number ``n`` (its slice: the local cloud's first free slice on this host
plus its position among the clouds served) owns
``127.(100+n).0.0/16`` for everything reachable (public, external and provider network
addresses, floating IPs) and ``127.(200+n).0.0/16`` for private fixed addresses (one /24
per tenant network). Nothing outside 127.0.0.0/8 is ever handed out.

Which networks exist from the start is the personality's ``network`` shape; records made
by the local cloud itself carry ``_system`` and are not resources a test leaves behind.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
import uuid

from localcloud.cloud import Cloud
from localcloud.forwarding import Decision, Resolver
from localcloud.http import HTTPFault, iso

ROUTABLE_BASE, PRIVATE_BASE = 100, 200
MAX_CLOUDS = 55
# The fixed ids public clouds without neutron gave their two networks (public, ServiceNet).
PUBLIC_NET_ID = "00000000-0000-0000-0000-000000000000"
SERVICE_NET_ID = "11111111-1111-1111-1111-111111111111"
KINDS = ("network", "subnet", "port", "floatingip", "secgroup", "secrule")


class NotFound(HTTPFault):
    """A network-side lookup that failed; ``kind`` names the Neutron exception."""

    def __init__(self, kind: str, message: str):
        super().__init__(404, message)
        self.kind = kind


def routable_cidr(cloud: Cloud) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"127.{ROUTABLE_BASE + cloud.index}.0.0/16")


def private_cidr(cloud: Cloud) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"127.{PRIVATE_BASE + cloud.index}.0.0/16")


def stamp(doc: dict) -> dict:
    now = time.time()
    doc.setdefault("_created", now)
    doc["created_at"] = iso(doc["_created"])
    doc["updated_at"] = iso(now)
    doc["revision_number"] = doc.get("revision_number", -1) + 1
    return doc


def save(cloud: Cloud, kind: str, doc: dict) -> dict:
    stamp(doc)
    cloud.store.put_record(cloud.name, kind, doc, doc["_created"])
    return doc


def get(cloud: Cloud, kind: str, rid: str) -> dict | None:
    return cloud.store.get_record(cloud.name, kind, rid) if isinstance(rid, str) else None


def all_of(cloud: Cloud, kind: str) -> list[dict]:
    return cloud.store.list_records(cloud.name, kind)


def delete(cloud: Cloud, kind: str, rid: str) -> None:
    cloud.store.delete_record(cloud.name, kind, rid)


def owned(cloud: Cloud) -> dict:
    pid = cloud.credentials["project_id"]
    return {"project_id": pid, "tenant_id": pid}


# --- creating things ---------------------------------------------------------------
def new_network(cloud: Cloud, name: str, *, external: bool = False, shared: bool = False,
                routable: bool = False, default: bool = False, provider: bool = False,
                system: bool = False, rid: str | None = None) -> dict:
    doc = {"id": rid or str(uuid.uuid4()), "name": name, "admin_state_up": True,
           "status": "ACTIVE", "shared": shared, "router:external": external, "subnets": [],
           "mtu": 1500, "port_security_enabled": True, "availability_zones": ["nova"],
           "description": "", "tags": [], "ipv4_address_scope": None,
           **owned(cloud), "_routable": routable, "_default": default, "_system": system}
    if provider:
        doc.update({"provider:network_type": "flat", "provider:physical_network": "public",
                    "provider:segmentation_id": None})
    return save(cloud, "network", doc)


def new_subnet(cloud: Cloud, network: dict, cidr: str, name: str = "",
               gateway_ip: str | None = None, system: bool = False) -> dict:
    net = ipaddress.IPv4Network(cidr)
    gateway = gateway_ip or str(net.network_address + 1)
    doc = {"id": str(uuid.uuid4()), "name": name, "network_id": network["id"],
           "ip_version": 4, "cidr": str(net), "gateway_ip": gateway, "enable_dhcp": True,
           "allocation_pools": [{"start": str(net.network_address + 2),
                                 "end": str(net.broadcast_address - 1)}],
           "dns_nameservers": [], "host_routes": [], "ipv6_ra_mode": None,
           "ipv6_address_mode": None, "subnetpool_id": None, "description": "", "tags": [],
           **owned(cloud), "_system": system}
    network["subnets"].append(doc["id"])
    save(cloud, "network", network)
    return save(cloud, "subnet", doc)


def used_addresses(cloud: Cloud) -> set[str]:
    used = {ip["ip_address"] for p in all_of(cloud, "port") for ip in p["fixed_ips"]}
    used |= {f["floating_ip_address"] for f in all_of(cloud, "floatingip")}
    used |= {s["gateway_ip"] for s in all_of(cloud, "subnet")}
    return used


def allocate_address(cloud: Cloud, subnet: dict) -> str:
    used = used_addresses(cloud)
    pool = subnet["allocation_pools"][0]
    start, end = (int(ipaddress.IPv4Address(pool[k])) for k in ("start", "end"))
    for value in range(start, end + 1):
        address = str(ipaddress.IPv4Address(value))
        if address not in used:
            return address
    raise HTTPFault(409, f"No more IP addresses available on network {subnet['network_id']}.")


def subnets_of(cloud: Cloud, network: dict) -> list[dict]:
    return [s for s in (get(cloud, "subnet", i) for i in network["subnets"]) if s]


def mac_address() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def new_port(cloud: Cloud, network: dict, *, device_id: str = "", device_owner: str = "",
             security_groups: list[str] | None = None, fixed_ip: str | None = None,
             name: str = "", port_security: bool = True) -> dict:
    subnets = subnets_of(cloud, network)
    if not subnets:
        raise HTTPFault(400, f"Network {network['id']} has no subnet to allocate from.")
    subnet = subnets[0]
    if fixed_ip is None:
        fixed_ip = allocate_address(cloud, subnet)
    elif ipaddress.IPv4Address(fixed_ip) not in ipaddress.IPv4Network(subnet["cidr"]):
        raise HTTPFault(400, f"IP address {fixed_ip} is not a valid IP for the specified subnet.")
    elif fixed_ip in used_addresses(cloud):
        raise HTTPFault(409, f"IP address {fixed_ip} already allocated in subnet {subnet['id']}")
    if security_groups is None:
        security_groups = [default_group(cloud)["id"]] if cloud.personality.network[
            "security_groups"] else []
    doc = {"id": str(uuid.uuid4()), "name": name, "network_id": network["id"],
           "mac_address": mac_address(), "admin_state_up": True,
           "status": "ACTIVE" if device_id else "DOWN", "device_id": device_id,
           "device_owner": device_owner, "fixed_ips": [{"subnet_id": subnet["id"],
                                                         "ip_address": fixed_ip}],
           "security_groups": security_groups, "port_security_enabled": port_security,
           "allowed_address_pairs": [], "extra_dhcp_opts": [], "binding:vnic_type": "normal",
           "description": "", "tags": [], **owned(cloud)}
    return save(cloud, "port", doc)


def allocate_floating(cloud: Cloud, pool: dict) -> dict:
    """A new floating IP from ``pool`` (an external network), not associated."""
    subnet = subnets_of(cloud, pool)[0]
    fip = {"id": str(uuid.uuid4()),
           "floating_ip_address": allocate_address(cloud, subnet),
           "floating_network_id": pool["id"], "port_id": None, "fixed_ip_address": None,
           "router_id": None, "status": "DOWN", "description": "", "tags": [],
           "port_details": None, **owned(cloud)}
    return save(cloud, "floatingip", fip)


def default_group(cloud: Cloud) -> dict:
    for group in all_of(cloud, "secgroup"):
        if group["name"] == "default":
            return group
    raise NotFound("SecurityGroupNotFound", "Security group default does not exist")


def new_group(cloud: Cloud, name: str, description: str = "", system: bool = False) -> dict:
    doc = {"id": str(uuid.uuid4()), "name": name, "description": description,
           "stateful": True, "tags": [], **owned(cloud), "_system": system}
    return save(cloud, "secgroup", doc)


def new_rule(cloud: Cloud, group: dict, *, direction: str = "ingress", ethertype: str = "IPv4",
             protocol: str | None = None, port_range_min: int | None = None,
             port_range_max: int | None = None, remote_ip_prefix: str | None = None,
             remote_group_id: str | None = None, system: bool = False) -> dict:
    doc = {"id": str(uuid.uuid4()), "security_group_id": group["id"], "direction": direction,
           "ethertype": ethertype, "protocol": protocol, "port_range_min": port_range_min,
           "port_range_max": port_range_max, "remote_ip_prefix": remote_ip_prefix,
           "remote_group_id": remote_group_id, "remote_address_group_id": None,
           "description": "", "tags": [], **owned(cloud), "_system": system}
    return save(cloud, "secrule", doc)


def rules_of(cloud: Cloud, group_id: str) -> list[dict]:
    return [r for r in all_of(cloud, "secrule") if r["security_group_id"] == group_id]


# --- the personality's starting networks ----------------------------------------------
def seed(cloud: Cloud) -> None:
    """Make the networks, subnets and default group the shape starts with (once)."""
    if "compute" not in cloud.personality.services or all_of(cloud, "network"):
        return
    shape = cloud.personality.network
    routable, private = routable_cidr(cloud), private_cidr(cloud)
    if shape["security_groups"]:
        group = new_group(cloud, "default", "Default security group", system=True)
        for ethertype in ("IPv4", "IPv6"):
            new_rule(cloud, group, direction="egress", ethertype=ethertype, system=True)
            new_rule(cloud, group, ethertype=ethertype, remote_group_id=group["id"],
                     system=True)
    if shape["api"] == "none":
        public = new_network(cloud, "public", routable=True, default=True, system=True,
                             rid=PUBLIC_NET_ID, shared=True)
        new_subnet(cloud, public, str(routable), system=True)
        service = new_network(cloud, "private", default=True, system=True, rid=SERVICE_NET_ID,
                              shared=True)
        new_subnet(cloud, service, str(private), system=True)
        return
    if shape["api"] == "nova-network":
        fixed = new_network(cloud, "private", default=True, system=True)
        new_subnet(cloud, fixed, str(next(private.subnets(new_prefix=24))), system=True)
        pool = new_network(cloud, shape.get("floating_pool", "nova"), external=True,
                           system=True)
        new_subnet(cloud, pool, str(routable), system=True)
        _seed_project_networks(cloud)
        return
    external = shape["external"]
    ext = new_network(cloud, shape["external_network"], system=True,
                      external=external in ("floating", "external-network"),
                      shared=external != "floating", routable=external != "floating",
                      default=external != "floating", provider=external == "routable-port")
    new_subnet(cloud, ext, str(routable), name=f"{shape['external_network']}-subnet",
               system=True)
    if shape.get("tenant_network"):
        tenant = new_network(cloud, shape["tenant_network"], default=True, system=True)
        new_subnet(cloud, tenant, str(next(private.subnets(new_prefix=24))),
                   name=f"{shape['tenant_network']}-subnet", system=True)
    _seed_project_networks(cloud)


def _seed_project_networks(cloud: Cloud) -> None:
    """The personality's ``project_networks``: each one a server may boot on."""
    for name in cloud.personality.network["project_networks"]:
        net = new_network(cloud, name, default=True, system=True)
        new_subnet(cloud, net, next_private_cidr(cloud), name=f"{name}-subnet", system=True)


def next_private_cidr(cloud: Cloud) -> str:
    taken = {s["cidr"] for s in all_of(cloud, "subnet")}
    for candidate in private_cidr(cloud).subnets(new_prefix=24):
        if str(candidate) not in taken:
            return str(candidate)
    raise HTTPFault(409, "No private address range left.")


# --- what a server looks like from outside ---------------------------------------------
def ports_of(cloud: Cloud, server_id: str) -> list[dict]:
    return [p for p in all_of(cloud, "port") if p["device_id"] == server_id]


def floating_of(cloud: Cloud, port_ids: set[str]) -> list[dict]:
    return [f for f in all_of(cloud, "floatingip") if f["port_id"] in port_ids]


def server_addresses(cloud: Cloud, server_id: str) -> dict[str, list[dict]]:
    """Nova's ``addresses``: fixed IPs by network name, floating ones after their fixed IP."""
    addresses: dict[str, list[dict]] = {}
    for port in ports_of(cloud, server_id):
        network = get(cloud, "network", port["network_id"]) or {"name": port["network_id"]}
        entries = addresses.setdefault(network["name"], [])
        for ip in port["fixed_ips"]:
            entries.append({"version": 4, "addr": ip["ip_address"], "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        for fip in floating_of(cloud, {port["id"]}):
            entries.append({"version": 4, "addr": fip["floating_ip_address"],
                            "OS-EXT-IPS:type": "floating",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
    return addresses


def reachable(cloud: Cloud) -> dict[str, str]:
    """{address: server id} for every address of an ACTIVE server the outside reaches."""
    found = {}
    networks = {n["id"]: n for n in all_of(cloud, "network")}
    running = {s["id"] for s in all_of(cloud, "server") if s["status"] == "ACTIVE"}
    ports = {p["id"]: p for p in all_of(cloud, "port") if p["device_id"] in running}
    for port in ports.values():
        if networks.get(port["network_id"], {}).get("_routable"):
            for ip in port["fixed_ips"]:
                found[ip["ip_address"]] = port["device_id"]
    for fip in all_of(cloud, "floatingip"):
        if fip["port_id"] in ports:
            found[fip["floating_ip_address"]] = ports[fip["port_id"]]["device_id"]
    return found


def rule_opens(rule: dict, peer: ipaddress.IPv4Address, port: int) -> bool:
    if rule["direction"] != "ingress" or rule["ethertype"] != "IPv4":
        return False
    if rule["protocol"] not in (None, "tcp", "6", "any"):
        return False
    low, high = rule["port_range_min"], rule["port_range_max"]
    if low is not None and not low <= port <= (high if high is not None else low):
        return False
    if rule["remote_group_id"] is not None:
        return False            # the peer is outside the cloud: never in a group
    prefix = rule["remote_ip_prefix"] or "0.0.0.0/0"
    return peer in ipaddress.IPv4Network(prefix, strict=False)


def allows(cloud: Cloud, server_id: str, peer: str, port: int = 22) -> bool:
    """Whether a connection from ``peer`` to ``port`` passes the server's security groups."""
    if not cloud.personality.network["security_groups"]:
        return True
    address = ipaddress.IPv4Address(peer)
    for p in ports_of(cloud, server_id):
        if not p["port_security_enabled"]:
            return True
        for group_id in p["security_groups"]:
            if any(rule_opens(r, address, port) for r in rules_of(cloud, group_id)):
                return True
    return False


def release_server(cloud: Cloud, server_id: str) -> None:
    """A deleted server's ports go (floating IPs stay, disassociated); user ports unbind."""
    for port in ports_of(cloud, server_id):
        for fip in floating_of(cloud, {port["id"]}):
            fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN")
            save(cloud, "floatingip", fip)
        if port.get("_made_by_nova"):
            delete(cloud, "port", port["id"])
        else:
            port.update(device_id="", device_owner="", status="DOWN")
            save(cloud, "port", port)


def user_resources(cloud: Cloud) -> dict[str, list]:
    """User-made network resources (what the local cloud made itself is not listed)."""
    def user(kind: str) -> list[dict]:
        return [d for d in all_of(cloud, kind) if not d.get("_system")]
    return {
        "floating_ips": [{"id": f["id"], "floating_ip_address": f["floating_ip_address"],
                          "port_id": f["port_id"]} for f in user("floatingip")],
        "ports": [{"id": p["id"], "network_id": p["network_id"], "device_id": p["device_id"],
                   "fixed_ips": [i["ip_address"] for i in p["fixed_ips"]]}
                  for p in user("port") if not p.get("_made_by_nova")],
        "networks": [{"id": n["id"], "name": n["name"]} for n in user("network")],
        "security_groups": [{"id": g["id"], "name": g["name"]} for g in user("secgroup")],
        "security_group_rules": [{"id": r["id"], "security_group_id": r["security_group_id"],
                                  "protocol": r["protocol"], "port_range_min":
                                  r["port_range_min"], "remote_ip_prefix":
                                  r["remote_ip_prefix"]} for r in user("secrule")],
    }


def public_view(doc: dict) -> dict:
    """A record without the local cloud's own bookkeeping keys."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


# --- keeping the forwarder in step ------------------------------------------------------
def _resolver(cloud: Cloud, server_id: str) -> Resolver:
    def decide(peer: str) -> Decision:
        server = get(cloud, "server", server_id)
        if server is None or server["status"] != "ACTIVE":
            return Decision("reset")
        if not allows(cloud, server_id, peer):
            return Decision("reset")
        if server.get("_silent"):
            return Decision("silent")
        guest = cloud.hypervisor.guests.get(server_id) if cloud.hypervisor else None
        if guest is None or not guest.running:
            return Decision("reset")
        return Decision("forward", guest.ssh_port)
    return decide


async def refresh(cloud: Cloud) -> None:
    """Make the forwarder listen on exactly the addresses now reachable in this cloud."""
    if cloud.forwarder is None:
        return
    wanted = {address: _resolver(cloud, server_id)
              for address, server_id in reachable(cloud).items()}
    await cloud.forwarder.sync(cloud.name, wanted)
