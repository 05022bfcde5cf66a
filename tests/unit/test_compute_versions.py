"""Compute behaviours of real clouds as pure decisions: the microversion, the create body's
``networks``, Neutron's root, the floating-IP pool, a network named on nova-network, and
which refusal of a key means "try RSA"."""

from __future__ import annotations

import pytest

from pipeline.cloud import addresses as a
from pipeline.cloud import keys
from pipeline.cloud.versions import (
    ComputeVersion,
    choose_compute_version,
    neutron_endpoint,
    server_networks,
)
from pipeline.core import errors


@pytest.mark.parametrize("shape, low, high, api, expected, proxies, networks_required", [
    # no microversions in the version document: no header, the v2.1 (or v2.0) base
    ("hp-like, Juno: v2.0 only", None, None, "neutron", None, True, False),
    ("v2.1 base, nothing later", "2.1", "2.1", "neutron", None, True, False),
    # neutron: the highest both know, capped at 2.37 (explicit networks)
    ("Liberty (2.12)", "2.1", "2.12", "neutron", "2.12", True, False),
    ("Newton (2.38)", "2.1", "2.38", "neutron", "2.37", False, True),
    ("vexxhost-like, recent", "2.1", "2.96", "neutron", "2.37", False, True),
    ("exactly 2.36", "2.1", "2.36", "neutron", "2.36", False, False),
    ("no network API (rackspace-like)", "2.1", "2.79", "none", "2.37", False, True),
    # nova-network: the proxies answer up to 2.35 only
    ("auro-like, Mitaka (2.25)", "2.1", "2.25", "nova-network", "2.25", True, False),
    ("nova-network on Newton (2.38)", "2.1", "2.38", "nova-network", "2.35", True, False),
    ("tuple versions", (2, 1), (2, 60), "nova-network", "2.35", True, False),
])
def test_choose_compute_version(shape, low, high, api, expected, proxies, networks_required):
    assert choose_compute_version(low, high, api) == ComputeVersion(expected, proxies,
                                                                    networks_required)


@pytest.mark.parametrize("low, high, api", [
    ("2.36", "2.90", "nova-network"),     # the proxies are gone at every version offered
    ("2.40", "2.90", "neutron"),          # newer than anything this pipeline knows
])
def test_a_cloud_without_a_usable_microversion_is_refused(low, high, api):
    with pytest.raises(errors.CloudError, match=f"Nova offers microversions {low} to {high}"):
        choose_compute_version(low, high, api)


AT_2_1 = ComputeVersion(None, True, False)
AT_2_37 = ComputeVersion("2.37", False, True)


@pytest.mark.parametrize("network, version, expected", [
    ("n1", AT_2_1, [{"uuid": "n1"}]),
    (None, AT_2_1, None),                 # left out: the cloud chooses
    ("n1", AT_2_37, [{"uuid": "n1"}]),
    (None, AT_2_37, "auto"),              # required from 2.37: the cloud chooses
])
def test_server_networks(network, version, expected):
    assert server_networks(network, version) == expected


@pytest.mark.parametrize("catalog, expected", [
    ("https://network.example.com", "https://network.example.com/v2.0"),
    ("https://network.example.com/", "https://network.example.com/v2.0"),
    ("https://example.com:9696/v2.0/", "https://example.com:9696/v2.0"),
    ("http://127.0.0.1:5000/network", "http://127.0.0.1:5000/network/v2.0"),
])
def test_neutron_endpoint_skips_discovery(catalog, expected):
    assert neutron_endpoint(catalog) == expected


@pytest.mark.parametrize("pools, name, expected", [
    (["public"], None, "public"),                 # the only pool, not Nova's "nova"
    (["nova"], None, "nova"),
    (["nova", "internal"], None, None),           # Nova's default exists: leave it to Nova
    (["public", "internal"], "internal", "internal"),
])
def test_choose_floating_pool(pools, name, expected):
    assert a.choose_floating_pool(pools, name) == expected


@pytest.mark.parametrize("pools, name, error", [
    (["public", "internal"], None, errors.ConfigError),
    (["public"], "nova", errors.ConfigError),
    ([], None, errors.BootError),
])
def test_choose_floating_pool_errors(pools, name, error):
    with pytest.raises(error):
        a.choose_floating_pool(pools, name)


NOVANET = [{"id": "11", "name": "private", "status": "ACTIVE"},
           {"id": "22", "name": "backend", "status": "ACTIVE"}]


def test_a_network_is_named_on_nova_network_too():
    assert a.choose_network(NOVANET, "backend", "floating") == "22"
    with pytest.raises(errors.ConfigError, match="no network 'db'"):
        a.choose_network(NOVANET, "db", "floating")


@pytest.mark.parametrize("error, refused", [
    (errors.from_status(400, "Nova returned 400 (Keypair data is invalid: failed to "
                             "generate fingerprint)"), True),
    (errors.from_status(400, "Nova returned 400 (Invalid input for field/attribute "
                             "keypair.)"), False),
    (errors.from_status(409, "Nova returned 409 (Key pair 'x' already exists.)"), False),
    (errors.QuotaExceeded("Nova returned 403 (Quota exceeded, too many key pairs.)"), False),
])
def test_only_a_refused_key_means_another_type(error, refused):
    assert keys.refused_key(error) is refused

