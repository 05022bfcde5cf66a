"""The qemu command line and format names, decided without starting qemu."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError
from pipeline.image import vm
from qemuhost.accel import accel_args


@pytest.mark.parametrize("disk_format, qemu_name", [
    ("raw", "raw"), ("qcow2", "qcow2"), ("vhd", "vpc"), ("VHD", "vpc"), ("vpc", "vpc"),
])
def test_qemu_format(disk_format, qemu_name):
    assert vm.qemu_format(disk_format) == qemu_name


def test_qemu_format_refuses_unknown():
    with pytest.raises(ConfigError, match="ploop"):
        vm.qemu_format("ploop")


def _argv(kvm: bool, config_drive=None) -> list[str]:
    return vm.qemu_argv(overlay="/w/o.qcow2", accel_args=accel_args("kvm" if kvm else "tcg"),
                        memory_mb=512, cpus=2, ssh_port=2222, mac=vm.DEFAULT_MAC,
                        console_log="/w/console.log", config_drive=config_drive)


@pytest.mark.parametrize("kvm", [True, False])
def test_network_only_forwards_ssh_on_loopback(kvm):
    argv = _argv(kvm)
    nic = argv[argv.index("-nic") + 1]
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in nic
    assert "restrict=on" in nic and f"mac={vm.DEFAULT_MAC}" in nic


def test_tcg_has_no_host_cpu():
    assert "host" not in _argv(False)
    assert _argv(True)[_argv(True).index("-cpu") + 1] == "host"


def test_disk_is_the_overlay_and_console_is_a_file():
    argv = _argv(False)
    assert "file=/w/o.qcow2,format=qcow2,if=none,id=disk0,cache=unsafe" in argv
    assert argv[argv.index("-serial") + 1] == "file:/w/console.log"
    assert ["-m", "512"] == argv[argv.index("-m"):argv.index("-m") + 2]


@pytest.mark.parametrize("config_drive, attached", [(None, False), ("/w/cd.iso", True)])
def test_config_drive_is_a_read_only_cdrom(config_drive, attached):
    drives = [a for a in _argv(False, config_drive) if a.startswith("file=/w/cd.iso")]
    assert bool(drives) is attached
    if attached:
        assert "media=cdrom" in drives[0] and "readonly=on" in drives[0]


@pytest.mark.parametrize("static, expected", [
    (False, {"dhcp": True, "address": None}),
    (True, {"dhcp": False, "address": "10.0.2.15/24", "gateway": "10.0.2.2",
            "dns": ("10.0.2.3",)}),
])
def test_user_network_matches_qemu_user_mode(static, expected):
    spec = vm.user_network(static=static)
    for key, value in expected.items():
        assert getattr(spec, key) == value
