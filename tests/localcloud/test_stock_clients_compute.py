"""Stock clients, unmodified, booting real guests where each shape lets them.

openstacksdk: ``create_server(..., auto_ip=True, wait=True)`` ends with an
address whose port 22 answers, on every personality (the clouds.yaml hints say
where floating IPs come from and which network routes externally). The
openstack command line on the HP-like cloud: server create, floating ip create,
server add floating ip, security group rule create, and the guest answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openstack
import pytest

from tests.localcloud.cloudops import knock, shape, wait_banner, wait_gone
from tests.localcloud.conftest import ALL

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPENSTACK = Path(sys.executable).with_name("openstack")
BOOT_TIMEOUT = 300


def _sdk(lcc, cloud: str) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(config_files=[str(lcc.clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud))


def _boot_and_reach(lcc, tiny, cloud: str) -> tuple[str, float]:
    conn = _sdk(lcc, cloud)
    if shape(cloud)["security_groups"]:
        conn.create_security_group_rule("default", port_range_min=22, port_range_max=22,
                                        protocol="tcp", remote_ip_prefix="127.0.0.0/8")
    server = conn.create_server(f"sdk-{cloud}", image=tiny[cloud], flavor="m1.tiny",
                                auto_ip=True, wait=True, timeout=BOOT_TIMEOUT)
    # the nova-network branch of auto_ip returns the server before expanding its addresses
    address = server.public_v4 or conn.get_server(server.id).public_v4
    return address, wait_banner(address, BOOT_TIMEOUT)


def _cleanup(lcc, cloud: str) -> None:
    conn = _sdk(lcc, cloud)
    for server in conn.list_servers():
        conn.delete_server(server.id, wait=True, delete_ips=True)
    if shape(cloud)["api"] != "none":
        for fip in conn.list_floating_ips():
            conn.delete_floating_ip(fip.id)
    if shape(cloud)["security_groups"]:
        for group in conn.list_security_groups():
            for rule in group.get("security_group_rules") or group.get("rules") or []:
                if rule.get("port_range_min", rule.get("from_port")) == 22:
                    conn.delete_security_group_rule(rule["id"])
    left = lcc.leftovers(cloud)
    left.pop("images", None)
    assert left == {}


def test_openstacksdk_create_server_auto_ip_reaches_every_shape(lcc, tiny):
    try:
        with ThreadPoolExecutor(len(ALL)) as pool:
            results = dict(zip(ALL, pool.map(lambda c: _boot_and_reach(lcc, tiny, c), ALL),
                               strict=True))
    finally:
        for cloud in ALL:
            _cleanup(lcc, cloud)
    for cloud, (address, seconds) in results.items():
        print(f"\n{cloud}: openstacksdk says {address}, port 22 answered after {seconds:.1f} s")
        cidr = lcc.config(cloud)["imagefleet"]["overrides"]["network"]["routable_cidrs"][0]
        assert address.startswith(cidr.rsplit(".", 2)[0] + ".")


def _cli(lcc, *args: str) -> dict | list:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(lcc.clouds_yaml), OS_CLOUD="hp-like")
    done = subprocess.run([str(OPENSTACK), *args, "-f", "json"], capture_output=True,
                          text=True, env=env, timeout=BOOT_TIMEOUT + 60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_openstack_cli_on_the_hp_like_cloud(lcc, tiny, csessions):
    from tests.localcloud.cloudops import nova
    server = _cli(lcc, "server", "create", "--image", tiny["hp-like"], "--flavor", "m1.tiny",
                  "--network", "private-network", "--wait", "cli-server")
    try:
        assert server["status"] == "ACTIVE"
        fip = _cli(lcc, "floating", "ip", "create", "Ext-Net")
        address = fip["floating_ip_address"]
        assert knock(address, timeout=1) == "refused"       # not associated yet
        subprocess.run([str(OPENSTACK), "server", "add", "floating", "ip", "cli-server",
                        address], check=True, env=dict(
                            os.environ, OS_CLIENT_CONFIG_FILE=str(lcc.clouds_yaml),
                            OS_CLOUD="hp-like"), capture_output=True)
        assert knock(address, timeout=1) == "reset"         # no rule for port 22 yet
        rule = _cli(lcc, "security", "group", "rule", "create", "--protocol", "tcp",
                    "--dst-port", "22", "--remote-ip", "127.0.0.0/8", "default")
        assert rule["port_range_min"] == 22
        wait_banner(address, BOOT_TIMEOUT)
        shown = _cli(lcc, "server", "show", "cli-server")
        assert address in json.dumps(shown["addresses"])
    finally:
        compute = nova(csessions["hp-like"], lcc, "hp-like")
        _cleanup(lcc, "hp-like")
        for s in compute.get("/servers").json()["servers"]:
            wait_gone(compute, s["id"])
