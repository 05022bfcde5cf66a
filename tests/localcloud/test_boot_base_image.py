"""Slow tier: the project's own base image, uploaded to the local cloud, booted and logged into.

The image comes from ``IMAGEFLEET_BASE_IMAGE`` (a raw file); its build id from
``IMAGEFLEET_BASE_BUILD_ID`` or a ``build-id`` file beside it. Without an image
the test is skipped. On the DreamHost-like cloud it takes DHCP, a floating IP
and a rule; on the Rackspace-like one (converted to VHD, through Swift and an
import task) it configures its public address statically from the config drive.
Either way cloud-init installs the Nova keypair for ``debian``.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from localcloud.personality import load
from localcloud.testing import running_cloud
from tests.localcloud.cloudops import (
    create_server,
    floating_ip,
    nova,
    open_port_22,
    upload_image,
    wait_banner,
    wait_status,
)
from tests.localcloud.conftest import make_session, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
BOOT_TIMEOUT = 900
LOGIN_USER = os.environ.get("IMAGEFLEET_LOGIN_USER", "debian")


@pytest.fixture(scope="module")
def base_image_file(base_image) -> tuple[Path, str]:
    """The session's real build (tests/built_image.py): raw file and build id."""
    return base_image.path, base_image.build_id


def _login(address: str, private_key: str) -> str:
    key = paramiko.RSAKey.from_private_key(io.StringIO(private_key))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(address, 22, username=LOGIN_USER, pkey=key, timeout=10,
                       banner_timeout=30, auth_timeout=30, look_for_keys=False,
                       allow_agent=False)
        _, out, _ = client.exec_command("cat /etc/imagefleet-build", timeout=30)
        return out.read().decode().strip()
    finally:
        client.close()


@pytest.mark.parametrize("cloud", ["dreamhost-like", "rackspace-like"])
def test_base_image_boots_and_logs_in(cloud, base_image_file, tmp_path):
    path, build_id = base_image_file
    fmt = load(cloud).disk_formats[0]
    if fmt != "raw":
        converted = tmp_path / f"base.{fmt}"
        subprocess.run(["qemu-img", "convert", "-O", {"vhd": "vpc"}.get(fmt, fmt), str(path),
                        str(converted)], check=True)
        path = converted
    with running_cloud([cloud], tmp_path / "lc") as lc:
        sess = make_session(lc, cloud)
        image_id = upload_image(lc, sess, cloud, path, name="base")
        compute = nova(sess, lc, cloud)
        pair = compute.post("/os-keypairs", json={"keypair": {"name": "e2e"}}).json()["keypair"]
        began = time.monotonic()
        server = create_server(compute, image_id, name="base", key_name="e2e",
                               config_drive=True, flavorRef="2")
        server = wait_status(compute, server["id"], "ACTIVE", timeout=BOOT_TIMEOUT)
        if load(cloud).network["external"] == "floating":
            _, address = floating_ip(lc, sess, cloud, server)
        else:
            address = server["addresses"]["public"][0]["addr"]
        open_port_22(lc, sess, cloud)
        wait_banner(address, BOOT_TIMEOUT)
        banner = time.monotonic() - began
        found = wait_for(lambda: _try_login(address, pair["private_key"]),
                         timeout=BOOT_TIMEOUT, every=5)
        print(f"\n{cloud}: banner after {banner:.0f} s, logged in after "
              f"{time.monotonic() - began:.0f} s, build {found}")
        if build_id:
            assert found == build_id
        else:
            assert found


def _try_login(address: str, private_key: str) -> str | None:
    try:
        return _login(address, private_key) or None
    except (paramiko.SSHException, OSError):
        return None
