"""The external address and the floating-IP decision, for the five network shapes of the talks.

Each row is a server as Nova shows it (and Neutron's ports and networks where
the cloud has Neutron), in the vendor shape it comes from.
"""

from __future__ import annotations

import pytest

from pipeline.cloud import addresses as a
from pipeline.core.errors import BootError, ConfigError

EXT_NET = {"id": "ext", "name": "Ext-Net", "router:external": True, "shared": False}
PUBLIC_EXT = {"id": "pub", "name": "public", "router:external": True, "shared": True}
PROVIDER = {"id": "prov", "name": "Ext-Net", "router:external": False, "shared": True,
            "provider:network_type": "flat"}
TENANT = {"id": "tenant", "name": "private-network", "router:external": False, "shared": False}


def addr(ip: str, kind: str = "fixed", version: int = 4) -> dict:
    return {"addr": ip, "version": version, "OS-EXT-IPS:type": kind}


def port(network: str, ip: str, pid: str = "p1") -> dict:
    return {"id": pid, "network_id": network, "fixed_ips": [{"ip_address": ip}]}


def server(addresses: dict, access: str = "") -> dict:
    return {"id": "s1", "accessIPv4": access, "addresses": addresses}


# (shape, server, ports, networks, routable_cidrs, expected)
SHAPES = [
    ("rackspace-like: public address, no neutron",
     server({"public": [addr("2001:4800:7817::1", version=6), addr("162.242.140.10")],
             "private": [addr("10.176.2.3")]}), None, None, [],
     ("162.242.140.10", a.PUBLIC_KEY)),
    ("hp-like: neutron floating IP associated",
     server({"private-network": [addr("10.0.0.5"), addr("15.126.200.7", "floating")]}),
     [port("tenant", "10.0.0.5")], [EXT_NET, TENANT], [], ("15.126.200.7", a.FLOATING)),
    ("dreamhost-like: tenant network, no floating IP yet",
     server({"private-network": [addr("10.10.10.4")]}),
     [port("tenant", "10.10.10.4")], [PUBLIC_EXT, TENANT], [], None),
    ("vexxhost-like: port on the router:external network",
     server({"public": [addr("38.108.68.20")]}),
     [port("pub", "38.108.68.20")], [PUBLIC_EXT], [], ("38.108.68.20", a.EXTERNAL_PORT)),
    ("ovh-like: routable provider-network port",
     server({"Ext-Net": [addr("51.68.140.9")]}),
     [port("prov", "51.68.140.9")], [PROVIDER], [], ("51.68.140.9", a.ROUTABLE)),
    ("ovh-like on the local cloud: 127.x counts as routable by the profile",
     server({"Ext-Net": [addr("127.104.0.5")]}),
     [port("prov", "127.104.0.5")], [PROVIDER], ["127.104.0.0/16"],
     ("127.104.0.5", a.ROUTABLE)),
    ("auro-like: nova-network fixed address only",
     server({"private": [addr("10.0.0.3")]}), None, None, [], None),
    ("auro-like: nova-network floating IP associated",
     server({"private": [addr("10.0.0.3"), addr("208.75.75.11", "floating")]}), None, None,
     [], ("208.75.75.11", a.FLOATING)),
    ("accessIPv4 wins", server({"private": [addr("10.0.0.3")]}, access="203.0.114.1"),
     None, None, [], ("203.0.114.1", a.ACCESS_IPV4)),
    ("IPv6-only public network is not an IPv4 address",
     server({"public": [addr("2001:db8::5", version=6)]}), None, None, [], None),
    ("a private address outside the routable ranges does not count",
     server({"net": [addr("127.200.0.4")]}), [], [], ["127.104.0.0/16"], None),
    ("no addresses at all", server({}), [], [], [], None),
]


@pytest.mark.parametrize("shape, srv, ports, networks, cidrs, expected", SHAPES,
                         ids=[s[0].split(":")[0] + "-" + str(i) for i, s in enumerate(SHAPES)])
def test_external_ipv4(shape, srv, ports, networks, cidrs, expected):
    assert a.external_ipv4(srv, ports, networks, cidrs) == expected


# (shape, profile floating_ip, found, server, floating available, expected)
NEEDS = [
    ("hp-like: required, only a fixed address", "required", None,
     server({"private-network": [addr("10.0.0.5")]}), True, True),
    ("dreamhost-like: auto, fixed address, an external network exists", "auto", None,
     server({"private-network": [addr("10.10.10.4")]}), True, True),
    ("auro-like: required through nova-network", "required", None,
     server({"private": [addr("10.0.0.3")]}), True, True),
    ("vexxhost-like: never, the port is external", "never", ("38.108.68.20", a.EXTERNAL_PORT),
     server({"public": [addr("38.108.68.20")]}), True, False),
    ("ovh-like: never, no floating IPs at all", "never", None,
     server({"Ext-Net": [addr("10.1.1.1")]}), False, False),
    ("rackspace-like: public address found", "never", ("162.242.140.10", a.PUBLIC_KEY),
     server({"public": [addr("162.242.140.10")]}), False, False),
    ("required, but the cloud already gave one", "required", ("15.126.200.7", a.FLOATING),
     server({"n": [addr("10.0.0.5"), addr("15.126.200.7", "floating")]}), True, False),
    ("auto without anywhere to take one from", "auto", None,
     server({"n": [addr("10.0.0.5")]}), False, False),
    ("auto with no fixed address", "auto", None, server({}), True, False),
]


@pytest.mark.parametrize("shape, policy, found, srv, available, expected", NEEDS,
                         ids=[n[0].split(":")[0] + "-" + str(i) for i, n in enumerate(NEEDS)])
def test_needs_floating_ip(shape, policy, found, srv, available, expected):
    assert a.needs_floating_ip(policy, found, srv, available) is expected


def test_nat_destination_skips_ports_on_external_networks():
    ports = [port("pub", "38.108.68.20", "p-ext"), port("tenant", "10.0.0.5", "p-int")]
    assert a.nat_destination(ports, [PUBLIC_EXT, TENANT]) == ("p-int", "10.0.0.5")
    assert a.nat_destination([port("pub", "38.108.68.20")], [PUBLIC_EXT]) is None
    v6 = {"id": "p6", "network_id": "tenant", "fixed_ips": [{"ip_address": "fd00::4"}]}
    assert a.nat_destination([v6], [TENANT]) is None


OTHER_EXT = {"id": "ext2", "name": "Ext-Net-2", "router:external": True}


@pytest.mark.parametrize("networks, name, routers, expected", [
    ([EXT_NET, TENANT], None, [], "ext"),                                     # hp-like
    ([PUBLIC_EXT, TENANT], "public", [], "pub"),                              # named
    ([EXT_NET, OTHER_EXT, TENANT], None,
     [{"external_gateway_info": {"network_id": "ext2"}, "admin_state_up": True}], "ext2"),
    ([EXT_NET, OTHER_EXT], "ext", [], "ext"),                                 # by id
])
def test_choose_floating_network(networks, name, routers, expected):
    assert a.choose_floating_network(networks, name, routers)["id"] == expected


@pytest.mark.parametrize("networks, name, error", [
    ([EXT_NET, OTHER_EXT], None, ConfigError),       # which one? the profile must say
    ([TENANT], None, BootError),                     # nowhere to take one from
    ([EXT_NET], "nope", ConfigError),
])
def test_choose_floating_network_errors(networks, name, error):
    with pytest.raises(error):
        a.choose_floating_network(networks, name)


@pytest.mark.parametrize("source, target, check_cidr, expected", [
    ("127.0.0.1", "127.101.0.4", None, "127.0.0.1/32"),        # the local cloud
    ("192.168.1.20", "15.126.200.7", "198.51.100.0/24", "198.51.100.0/24"),  # behind NAT
    ("192.168.1.20", "15.126.200.7", None, "0.0.0.0/0"),        # NAT, no profile range
    ("8.8.4.4", "15.126.200.7", None, "8.8.4.4/32"),            # a global address
    ("10.0.0.9", "10.20.0.4", None, "10.0.0.9/32"),             # private to private (VPN)
    (None, "15.126.200.7", "203.0.113.0/24", "203.0.113.0/24"),
    ("127.0.0.1", "15.126.200.7", None, "0.0.0.0/0"),
])
def test_rule_cidr(source, target, check_cidr, expected):
    assert a.rule_cidr(source, target, check_cidr) == expected


def test_is_routable():
    assert a.is_routable("51.68.140.9")
    assert not a.is_routable("10.0.0.1")
    assert a.is_routable("127.104.3.2", ["127.104.0.0/16"])
    assert not a.is_routable("not an address", ["0.0.0.0/0"])
    assert not a.is_routable("2001:db8::1", ["::/0"])
