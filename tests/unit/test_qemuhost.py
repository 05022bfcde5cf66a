"""qemuhost: the accelerator decision, its cache and setting, boot progress, the probe's bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from qemuhost import accel, console, probe
from qemuhost.accel import Decision
from qemuhost.probe import ProbeResult

OK = ProbeResult(True, 0.35, "finished")


@pytest.mark.parametrize("case, kvm, tcg, expected, why", [
    ("no /dev/kvm", None, OK, "tcg", "missing or not writable"),
    ("-cpu host aborts", ProbeResult(False, 0.1, "qemu exited -6 (kvm_buf_set_msrs)"), OK,
     "tcg", "qemu exited -6"),
    ("device is /dev/null", ProbeResult(False, 0.05, "qemu exited 1 (Inappropriate ioctl)"),
     OK, "tcg", "Inappropriate ioctl"),
    ("KVM starts, makes no progress", ProbeResult(False, 1.9, "no progress in 1.9 s"), OK,
     "tcg", "no progress"),
    ("nested KVM emulating: long mode in 3.5 s", ProbeResult(True, 3.5, "finished"), OK,
     "tcg", "emulating, not accelerating"),
    ("KVM as fast as TCG is not accelerating", ProbeResult(True, 0.34, "finished"), OK,
     "tcg", "emulating"),
    ("working KVM", ProbeResult(True, 0.08, "finished"), OK, "kvm", "KVM finished"),
    ("TCG itself broken, KVM works", ProbeResult(True, 0.08, "finished"),
     ProbeResult(False, 20.0, "no progress"), "kvm", "KVM finished"),
])
def test_judge(case, kvm, tcg, expected, why):
    decision = accel.judge(kvm, tcg)
    assert decision.accel == expected, case
    assert why in decision.why, case
    assert decision.source == "probe"


@pytest.mark.parametrize("configured, env, expected", [
    (None, None, "auto"), ("tcg", None, "tcg"), ("kvm", None, "kvm"), ("auto", "tcg", "tcg"),
    ("kvm", "TCG", "tcg"), (None, "kvm", "kvm"),
])
def test_setting_env_overrides_config(configured, env, expected):
    environ = {accel.ENV: env} if env else {}
    assert accel.resolve_setting(configured, environ) == expected


@pytest.mark.parametrize("configured, env, named", [("fast", None, "accel"),
                                                    (None, "hvf", accel.ENV)])
def test_unknown_setting_names_its_source(configured, env, named):
    with pytest.raises(ValueError, match=named):
        accel.resolve_setting(configured, {accel.ENV: env} if env else {})


def test_args_never_put_host_cpu_under_tcg():
    assert accel.accel_args("tcg") == ["-accel", "tcg"]
    assert accel.accel_args("kvm") == ["-accel", "kvm", "-cpu", "host"]


def test_setting_skips_the_probe(monkeypatch):
    monkeypatch.setattr(accel, "run_probes", lambda: pytest.fail("probed"))
    assert accel.decide("tcg").accel == "tcg"
    assert accel.decide("kvm").source == "setting"


@pytest.fixture
def host(monkeypatch):
    """A fixed host key, no process cache, and probes that count their runs."""
    monkeypatch.setattr(accel, "host_key", lambda: "9.9.9-test qemu 7.2")
    monkeypatch.setattr(accel, "_process_cache", {})
    calls = []

    def probes(answer="kvm"):
        def run():
            calls.append(answer)
            return Decision(answer, f"probed {answer}", "probe", 0.05, 0.4)
        monkeypatch.setattr(accel, "run_probes", run)
    probes()
    return probes, calls


def test_cache_is_keyed_by_kernel_and_qemu_and_used(host, tmp_path):
    _, calls = host
    path = tmp_path / "accel.json"
    first = accel.decide("auto", path)
    assert first.accel == "kvm" and calls == ["kvm"]
    stored = json.loads(path.read_text())
    assert list(stored) == ["9.9.9-test qemu 7.2"]
    accel._process_cache.clear()
    again = accel.decide("auto", path)
    assert again.accel == "kvm" and again.source == "cache" and calls == ["kvm"]


def test_other_qemu_version_probes_again(host, tmp_path, monkeypatch):
    _, calls = host
    path = tmp_path / "accel.json"
    accel.decide("auto", path)
    monkeypatch.setattr(accel, "host_key", lambda: "9.9.9-test qemu 8.0")
    monkeypatch.setattr(accel, "_process_cache", {})
    accel.decide("auto", path)
    assert calls == ["kvm", "kvm"]
    assert len(json.loads(path.read_text())) == 2


def test_unreadable_cache_probes_again(host, tmp_path):
    _, calls = host
    path = tmp_path / "accel.json"
    path.write_text("{not json")
    assert accel.decide("auto", path).accel == "kvm" and calls == ["kvm"]


def test_failed_kvm_boot_drops_cached_works_and_probes_again(host, tmp_path):
    probes, calls = host
    path = tmp_path / "accel.json"
    accel.decide("auto", path)
    probes("tcg")                                  # the host's KVM now fails outright
    after = accel.kvm_failed(path, "failed to initialize kvm")
    assert after.accel == "tcg" and calls == ["kvm", "tcg"]
    assert json.loads(path.read_text())["9.9.9-test qemu 7.2"]["accel"] == "tcg"
    assert accel.decide("auto", path).accel == "tcg"


def test_kvm_that_passes_the_probe_but_stalls_a_boot_is_not_trusted_again(host, tmp_path):
    _, calls = host
    path = tmp_path / "accel.json"
    accel.decide("auto", path)
    after = accel.kvm_failed(path, "no progress past the boot loader in 30 s")
    assert after.accel == "tcg" and after.source == "boot"
    assert "although the probe passed" in after.why
    accel._process_cache.clear()
    assert accel.decide("auto", path).accel == "tcg"
    assert calls == ["kvm", "kvm"]


GRUB = ("\x1b[0m\x1b[30m\x1b[47m                             GNU GRUB  version 2.06-13\r\n"
        "+----------------------------------------------------------------------------+\r\n"
        "|*Debian GNU/Linux                                                           |\r\n"
        "|                                                                            |\r\n"
        "   Use the ^ and v keys to select which entry is highlighted.\r\n"
        "   Press enter to boot the selected OS, `e' to edit the commands\r\n"
        "   The highlighted entry will be executed automatically in 4s.\r\n"
        "  Booting `Debian GNU/Linux'\r\n\r\nLoading Linux 6.1.0-28-amd64 ...\r\n"
        "Loading initial ramdisk ...\r\n")


@pytest.mark.parametrize("case, text, past", [
    ("empty console", "", False),
    ("SeaBIOS only", "SeaBIOS (version 1.16.2-debian-1.16.2-1)\nBooting from Hard Disk...\n",
     False),
    ("GRUB menu then initrd, then silence", GRUB, False),
    ("kernel printk", GRUB + "[    0.000000] Linux version 6.1.0-28-amd64\n", True),
    ("quiet kernel, init talks", "tiny: loading modules\n", True),
    ("systemd", GRUB + "Welcome to Debian GNU/Linux 12 (bookworm)!\n", True),
])
def test_past_boot_loader(case, text, past):
    assert console.past_boot_loader(text) is past, case


@pytest.mark.parametrize("accel_name, elapsed, text, expected", [
    ("kvm", 31.0, GRUB, True),
    ("kvm", 29.0, GRUB, False),
    ("kvm", 300.0, GRUB + "[    0.1] x\n", False),
    ("tcg", 300.0, GRUB, False),
])
def test_stalled(accel_name, elapsed, text, expected):
    assert console.stalled(accel_name, elapsed, text, limit=30.0) is expected


@pytest.mark.parametrize("code, seen, seconds, ok, detail", [
    (33, probe.MARKER + b"\n", 0.3, True, "finished"),
    (33, b"", 0.3, False, "qemu exited 33"),
    (None, b"Booting from Hard Disk", 1.9, False, "no progress"),
    (-6, b"", 0.1, False, "qemu exited -6 (qemu: kvm.c: Assertion)"),
])
def test_probe_judge(code, seen, seconds, ok, detail):
    result = probe.judge(code, seen, seconds, "qemu: kvm.c: Assertion\n", timeout=1.9)
    assert result.ok is ok
    assert detail in result.detail


def test_sector_is_a_boot_sector_carrying_the_marker():
    assert len(probe.SECTOR) == 512 and probe.SECTOR.endswith(b"\x55\xaa")
    assert probe.MARKER in probe.SECTOR


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("ld")), reason="no binutils")
def test_sector_is_probe_s_assembled(tmp_path):
    source = Path(probe.__file__).with_name("probe.S")
    subprocess.run(["as", "--64", "-o", tmp_path / "p.o", source], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-Ttext=0x7c00", "--oformat", "binary",
                    "-e", "_start", "-o", tmp_path / "p.bin", tmp_path / "p.o"], check=True)
    assert (tmp_path / "p.bin").read_bytes() == probe.CODE


def test_formats_table():
    from qemuhost.formats import qemu_driver
    assert qemu_driver("VHD") == "vpc" and qemu_driver("qcow2") == "qcow2"
    with pytest.raises(KeyError):
        qemu_driver("iso9660")
