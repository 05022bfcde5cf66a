"""Compute behaviours of real clouds, reproduced by personality flags, over HTTP.

Nova microversions (the range in the version document, both request headers,
406/400, the proxies gone from 2.36, ``networks`` required from 2.37), a
project with several networks, a floating-IP pool not named ``nova``, ed25519
keys refused, and Neutron without a version document.  No guest boots here
(``tests/integration/test_compute_behaviours.py`` boots one per shape).
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from localcloud.personality import PERSONALITY_DIR
from localcloud.testing import personality_file, running_cloud
from tests.localcloud.cloudops import nova, service, upload_image
from tests.localcloud.conftest import make_session, qcow2_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NEWER = "2.79"


def _network(name: str, **changes) -> dict:
    shipped = yaml.safe_load((PERSONALITY_DIR / f"{name}.yaml").read_text())
    return {**shipped["network"], **changes}


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    """hp-like on a newer Nova with two project networks and Neutron without a version
    document; auro-like on Newton's Nova (2.38), refusing ed25519, its pool "public"."""
    d = tmp_path_factory.mktemp("behaviours")
    files = [
        personality_file(d, "hp-like",
                         compute={"config_drive": False, "max_microversion": NEWER},
                         network=_network("hp-like", project_networks=["second-network"],
                                          version_document=False)),
        personality_file(d, "auro-like",
                         compute={"config_drive": False, "max_microversion": "2.38",
                                  "ed25519_keys": False},
                         network=_network("auro-like", floating_pool="public",
                                          project_networks=["backend"]))]
    with running_cloud(files, d / "data") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def sessions(lc):
    return {name: make_session(lc, name) for name in ("hp-like", "auro-like")}


def compute(lc, sessions, cloud: str):
    return nova(sessions[cloud], lc, cloud)


def at(version: str | None = None, legacy: str | None = None) -> dict:
    headers = {}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    if legacy:
        headers["X-OpenStack-Nova-API-Version"] = legacy
    return {"headers": headers, "raise_exc": False}


def message(resp) -> str:
    (body,) = resp.json().values()
    return body["message"]


def test_the_version_document_offers_the_personalitys_range(lc, sessions):
    data = compute(lc, sessions, "hp-like").get_endpoint_data()
    assert (data.min_microversion, data.max_microversion) == ((2, 1), (2, 79))
    data = compute(lc, sessions, "auro-like").get_endpoint_data()
    assert data.max_microversion == (2, 38)


@pytest.mark.parametrize("headers, served", [
    (at(), "2.1"),                            # no header: the v2.1 base
    (at("2.37"), "2.37"),
    (at(legacy="2.12"), "2.12"),              # the legacy header alone
    (at("2.20", legacy="2.12"), "2.20"),      # the new header wins
    (at("latest"), NEWER),
])
def test_a_request_is_served_at_the_version_it_asks(lc, sessions, headers, served):
    resp = compute(lc, sessions, "hp-like").get("flavors", **headers)
    assert resp.status_code == 200
    assert resp.headers["OpenStack-API-Version"] == f"compute {served}"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == served


def test_a_version_out_of_range_or_malformed_is_refused_as_nova_does(lc, sessions):
    nova_ = compute(lc, sessions, "hp-like")
    resp = nova_.get("flavors", **at("2.80"))
    assert resp.status_code == 406
    assert message(resp) == ("Version 2.80 is not supported by the API. Minimum is 2.1 and "
                             "maximum is 2.79.")
    resp = nova_.get("flavors", **at(legacy="2.x"))
    assert resp.status_code == 400 and "is of invalid format" in message(resp)


def test_the_nova_network_proxies_are_gone_from_2_36(lc, sessions):
    nova_ = compute(lc, sessions, "auro-like")
    for path in ("os-floating-ips", "os-floating-ip-pools", "os-security-groups",
                 "os-tenant-networks"):
        assert nova_.get(path, **at("2.35")).status_code == 200, path
        assert nova_.get(path, **at("2.36")).status_code == 404, path


def test_networks_are_required_from_2_37(lc, sessions):
    nova_ = compute(lc, sessions, "hp-like")
    body = {"server": {"name": "s", "imageRef": "x", "flavorRef": "1"}}
    resp = nova_.post("servers", json=body, **at("2.37"))
    assert resp.status_code == 400 and "'networks' is a required property" in message(resp)
    # before 2.37 "auto" is not a list: the schema refuses it
    resp = nova_.post("servers", json={"server": {**body["server"], "networks": "auto"}},
                      **at("2.36"))
    assert resp.status_code == 400 and "networks" in message(resp)


def test_a_project_with_several_networks_must_name_one(lc, sessions, tmp_path):
    source = tmp_path / "disk.qcow2"
    source.write_bytes(qcow2_bytes())
    image = upload_image(lc, sessions["hp-like"], "hp-like", source)
    nova_ = compute(lc, sessions, "hp-like")
    body = {"name": "s", "imageRef": image, "flavorRef": "1"}
    resp = nova_.post("servers", json={"server": {**body, "networks": "auto"}}, **at("2.37"))
    assert resp.status_code == 409 and "Multiple possible networks" in message(resp)
    neutron = service(sessions["hp-like"], lc, "hp-like", "network")
    names = {n["name"] for n in neutron.get(
        neutron.get_endpoint(skip_discovery=True) + "/v2.0/networks").json()["networks"]}
    assert {"private-network", "second-network", "Ext-Net"} <= names
    # nova-network lists its project networks through os-tenant-networks
    listed = compute(lc, sessions, "auro-like").get("os-tenant-networks").json()["networks"]
    assert {n["label"] for n in listed} == {"private", "backend"}


def test_a_floating_ip_from_nova_default_pool_is_not_found_where_the_pool_is_public(
        lc, sessions):
    nova_ = compute(lc, sessions, "auro-like")
    pools = nova_.get("os-floating-ip-pools").json()["floating_ip_pools"]
    assert pools == [{"name": "public"}]
    resp = nova_.post("os-floating-ips", json={}, raise_exc=False)
    assert resp.status_code == 404 and message(resp) == "Floating IP pool not found."
    fip = nova_.post("os-floating-ips", json={"pool": "public"}).json()["floating_ip"]
    assert fip["pool"] == "public"
    nova_.delete(f"os-floating-ips/{fip['id']}")
    assert lc.leftovers("auro-like") == {}


def _public_key(tmp_path, key_type: str) -> str:
    path = tmp_path / key_type
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(path)], check=True)
    return path.with_name(f"{key_type}.pub").read_text().strip()


def test_ed25519_keys_are_refused_where_the_flag_says(lc, sessions, tmp_path):
    ed25519, rsa = _public_key(tmp_path, "ed25519"), _public_key(tmp_path, "rsa")
    auro = compute(lc, sessions, "auro-like")
    resp = auro.post("os-keypairs", json={"keypair": {"name": "k", "public_key": ed25519}},
                     raise_exc=False)
    assert resp.status_code == 400
    assert message(resp) == "Keypair data is invalid: failed to generate fingerprint"
    resp = auro.post("os-keypairs", json={"keypair": {"name": "k", "public_key": rsa}},
                     **at("2.2"))
    assert resp.status_code == 201 and resp.json()["keypair"]["type"] == "ssh"
    assert auro.delete("os-keypairs/k", **at("2.2")).status_code == 204
    hp = compute(lc, sessions, "hp-like")       # the default: ed25519 is a key like any
    hp.post("os-keypairs", json={"keypair": {"name": "k", "public_key": ed25519}})
    assert hp.delete("os-keypairs/k").status_code == 202
    assert lc.leftovers("auro-like") == {} and lc.leftovers("hp-like").get("keypairs") is None


def test_neutron_without_a_version_document_answers_only_under_v2_0(lc, sessions):
    neutron = service(sessions["hp-like"], lc, "hp-like", "network")
    root = neutron.get_endpoint(skip_discovery=True).rstrip("/")
    for url in (root, root + "/", root + "/v2.0", root + "/v2.0/"):
        assert neutron.get(url, raise_exc=False).status_code == 404, url
    assert neutron.get(root + "/v2.0/networks").status_code == 200
