"""bench/peers.py's operator scripts: valid bash, and the commands each shape needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.peers import operator_script
from localcloud.personality import load


@pytest.mark.parametrize("cloud, floating, rule", [
    ("dreamhost-like", True, True),     # tenant network + neutron floating IP
    ("hp-like", True, True),
    ("ovh-like", False, True),          # routable neutron port: no floating IP
])
def test_operator_script_shape(cloud, floating, rule, tmp_path):
    script = operator_script(cloud, load(cloud).network, Path("/x/tiny.raw"), "raw")
    path = tmp_path / "s.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert f"export OS_CLOUD={cloud}" in script
    assert "openstack image create" in script and "--file /x/tiny.raw" in script
    assert "server create" in script and "--wait" in script
    assert ("floating ip create" in script) is floating
    assert ("floating ip delete" in script) is floating
    assert ("security group rule create" in script) is rule
    assert script.index("server delete") > script.index("/dev/tcp/$ip/22")
