"""Real qemu under TCG with a 512-byte guest: the VM harness, not an OS.

The guest is the accel probe sector (it halts after reaching long mode), so
qemu runs but nothing listens on port 22.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from pipeline.cloud import reach
from pipeline.cloud.keys import make_keypair
from pipeline.core import runner
from pipeline.core.errors import BootError, ReachabilityError
from pipeline.image import vm
from qemuhost import accel, probe

pytestmark = pytest.mark.skipif(not shutil.which(vm.QEMU), reason="qemu not installed")
TCG = accel.accel_args("tcg")


@pytest.fixture
def tiny_image(tmp_path):
    path = tmp_path / "tiny.raw"
    path.write_bytes(probe.SECTOR.ljust(1024 * 1024, b"\0"))
    return path


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("keys"))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_probe_payload_reaches_long_mode_under_tcg():
    """The probe itself works, so a failed KVM probe really means KVM."""
    result = probe.run_probe(TCG, timeout=20)
    assert result.ok, result.detail


def test_this_hosts_decision_is_probed_once_and_cached(tmp_path):
    cache = tmp_path / vm.ACCEL_CACHE
    decision = accel.decide("auto", cache, refresh=True)
    assert decision.accel in ("kvm", "tcg") and decision.tcg_seconds is not None
    assert accel.host_key() in json.loads(cache.read_text())


def test_boot_runs_qemu_and_leaves_nothing_behind(tiny_image, tmp_path, key):
    before = _sha(tiny_image)
    with vm.boot(tiny_image, "raw", work_dir=tmp_path / "work", accel_args=TCG,
                 memory_mb=64, name="tiny") as machine:
        assert machine.alive() and machine.host == "127.0.0.1"
        assert (tmp_path / "work" / "tiny-overlay.qcow2").exists()
        with pytest.raises(ReachabilityError, match="TCP connected but no SSH banner"):
            reach.wait_for_ssh(machine.host, machine.ssh_port, timeout=3, vm=machine,
                               key_path=key.private_key_path, username="debian", poll=0.3)
        pid = machine.pid
    assert not machine.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "work" / "tiny-overlay.qcow2").exists()
    assert _sha(tiny_image) == before
    assert machine.console_log.exists()


def test_dead_qemu_fails_fast_with_boot_error(tiny_image, tmp_path, key):
    with vm.boot(tiny_image, "raw", work_dir=tmp_path, accel_args=[*TCG, "-no-such-option"],
                 memory_mb=64) as machine:
        start = time.monotonic()
        with pytest.raises(BootError, match="qemu exited 1 .*no-such-option") as err:
            reach.wait_for_ssh(machine.host, machine.ssh_port, timeout=60, vm=machine,
                               key_path=key.private_key_path, username="debian", poll=0.3)
        assert time.monotonic() - start < 10
        assert "\n" not in str(err.value)


def test_vhd_boots_through_a_vpc_overlay(tiny_image, tmp_path):
    vhd = tmp_path / "tiny.vhd"
    runner.run([vm.QEMU_IMG, "convert", "-O", "vpc", str(tiny_image), str(vhd)])
    overlay = vm.create_overlay(vhd, "vhd", tmp_path / "o.qcow2")
    info = json.loads(runner.run([vm.QEMU_IMG, "info", "--output=json", str(overlay)],
                                 capture=True).stdout)
    assert info["backing-filename-format"] == "vpc"
    assert info["full-backing-filename"] == str(vhd.resolve())


def test_unknown_format_is_a_config_error(tiny_image, tmp_path):
    with pytest.raises(Exception, match="cannot boot disk format 'ploop'"):
        vm.create_overlay(tiny_image, "ploop", tmp_path / "o.qcow2")
