"""The pipeline against compute behaviours of real clouds, each a local-cloud personality flag.

* a newer Nova (hp-like at 2.79): the pipeline negotiates 2.37 and names the
  server's network, as a create must from 2.37; a nova-network Nova on Newton
  (auro-like at 2.38): 2.35, where its proxies still answer;
* several project networks: the profile's ``network.network`` names the one to
  boot on, on Neutron and on nova-network (``os-tenant-networks``);
* a nova-network pool named ``public``, not Nova's default ``nova``;
* ed25519 public keys refused (400 "Keypair data is invalid"): an RSA key instead;
* Neutron without a version document: the catalog URL plus ``/v2.0``.

The API-level tests need no guest; one tiny-image boot per shape proves the
whole test boot (``verify_image``) on each.
"""

from __future__ import annotations

import pytest
import yaml

from localcloud.personality import PERSONALITY_DIR
from localcloud.testing import personality_file
from pipeline.cloud.connection import Connection, discover
from pipeline.cloud.keys import register_keypair
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.upload import upload_image
from pipeline.cloud.verify import verify_image
from pipeline.core import errors
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from tests.conftest import REPO
from tests.localcloud import tinyimage
from tests.pipeline_run import local_cloud

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.usefixtures("no_faults_left")]
SHAPES = ["hp-like", "auro-like"]
SSH_PORT = 22                 # the local cloud checks rules against port 22 (test_verify.py)
TINY_TIMEOUT = 180
TINY = BuildInfo(build_id="tinybehave", digest="sha256:" + "cd" * 32, image_name="tiny")
NAMED = {"hp-like": "second-network", "auro-like": "backend"}


def _network(name: str, **changes) -> dict:
    shipped = yaml.safe_load((PERSONALITY_DIR / f"{name}.yaml").read_text())
    return {**shipped["network"], **changes}


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    d = tmp_path_factory.mktemp("personalities")
    files = [
        personality_file(d, "hp-like",
                         compute={"config_drive": False, "max_microversion": "2.79"},
                         network=_network("hp-like", project_networks=["second-network"],
                                          version_document=False)),
        personality_file(d, "auro-like",
                         compute={"config_drive": False, "max_microversion": "2.38",
                                  "ed25519_keys": False},
                         network=_network("auro-like", floating_pool="public",
                                          project_networks=["backend"]))]
    yield from local_cloud(tmp_path_factory, files,
                           extra_args=["--max-boots", "2", "--ssh-port", str(SSH_PORT)])


@pytest.fixture(scope="module")
def clouds(lc, tmp_path_factory):
    """The two clouds, each profile naming the network to boot on (and no pool)."""
    data = yaml.safe_load(lc.clouds_yaml.read_text())
    for name, entry in data["clouds"].items():
        network = entry["imagefleet"]["overrides"]["network"]
        network.update(check_port=SSH_PORT, network=NAMED[name])
    path = tmp_path_factory.mktemp("clouds") / "clouds.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_pipeline(REPO / "config" / "pipeline.yaml")
    return {c.name: c for c in select_clouds(config, load_profiles(config.vendors_dir),
                                             load_clouds(path), only=SHAPES)}


def test_the_microversion_is_negotiated_and_sent(clouds):
    hp, auro = Connection(clouds["hp-like"]), Connection(clouds["auro-like"])
    assert (hp.compute_version.microversion, hp.compute_version.networks_required) == (
        "2.37", True)
    assert hp.clients.nova.call("GET", "flavors").headers[
        "OpenStack-API-Version"] == "compute 2.37"
    # nova-network: 2.35 at most, where the proxies still answer (2.36 is a 404 there)
    assert (auro.compute_version.microversion, auro.compute_version.proxies) == ("2.35", True)
    assert auro.clients.nova_network.pools() == ["public"]
    assert {n["name"] for n in auro.clients.nova_network.networks()} == {"private", "backend"}
    # check-config --discover says which
    assert discover(clouds["hp-like"])["compute microversion"] == "2.37"
    assert discover(clouds["auro-like"])["compute microversion"] == "2.35"


def test_neutron_is_reached_without_its_version_document(clouds):
    names = {n["name"] for n in Connection(clouds["hp-like"]).clients.neutron.networks()}
    assert {"private-network", "second-network", "Ext-Net"} <= names


def test_a_refused_ed25519_key_is_replaced_by_rsa(clouds, lc, tmp_path):
    nova = Connection(clouds["auro-like"]).clients.nova
    with pytest.raises(errors.BadRequest, match="Keypair data is invalid"):
        register_keypair(nova.create_keypair, tmp_path, "imagefleet-k1", "ed25519")
    key = register_keypair(nova.create_keypair, tmp_path, "imagefleet-k1", "auto")
    assert key.key_type == "rsa" and key.public_key.startswith("ssh-rsa ")
    assert key.private_key_path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    [stored] = [k for k in nova.keypairs() if k["name"] == "imagefleet-k1"]
    assert stored["public_key"] == key.public_key
    assert nova.delete_keypair("imagefleet-k1")
    assert lc.leftovers("auro-like") == {}


@pytest.mark.parametrize("name, how", [("hp-like", "neutron-floating-ip-created"),
                                       ("auro-like", "nova-network-floating-ip-created")])
def test_a_test_boot_on_the_named_network(name, how, clouds, lc, tmp_path):
    """One boot per shape: the named network, the pool that exists, the key it takes."""
    cloud = clouds[name]
    image_id = upload_image(cloud, tinyimage.tiny_image(cloud.disk_format), TINY,
                            poll_interval=0.2).image_id
    record = verify_image(cloud, image_id, TINY, work_dir=tmp_path,
                          boot_timeout=TINY_TIMEOUT, poll=0.5, login=False)
    assert record.verified and record.address_source == how
    conn = Connection(cloud)
    networks = (conn.clients.neutron.networks() if conn.clients.neutron
                else conn.clients.nova_network.networks())
    assert record.network == next(n["id"] for n in networks if n["name"] == NAMED[name])
    assert {k: v for k, v in lc.leftovers(name).items() if k != "images"} == {}
