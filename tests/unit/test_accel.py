"""Accelerator choice and the KVM probe's bookkeeping (no qemu started)."""

from __future__ import annotations

import json

import pytest

from pipeline.image import accel


@pytest.mark.parametrize("case, kvm, expected", [
    ("kvm boots guests", True, ["-accel", "kvm", "-cpu", "host"]),
    ("no kvm / nested PVM that cannot boot", False, ["-accel", "tcg"]),
])
def test_choose_accel(case, kvm, expected):
    assert accel.choose_accel(kvm) == expected


ABORT = "kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed."


@pytest.mark.parametrize("case, returncode, debugcon, seconds, stderr, ok, words", [
    ("working KVM", 33, accel.MARKER + b"\n", 0.2, "", True, "reached 64-bit long mode"),
    ("nested PVM, -cpu host aborts on an MSR", -6, b"", 0.1, ABORT, False,
     "qemu exited -6 (" + ABORT),
    ("nested PVM, other CPU: firmware crawls", 33, accel.MARKER, 6.8, "", False,
     "only after 6.8 s"),
    ("guest hangs", -15, b"SeaBIOS", 8.0, "", False, "hung (no answer within 8 s)"),
    ("no KVM module", 1, b"", 0.05, "Could not access KVM kernel module", False,
     "exited 1 (Could not access KVM kernel module)"),
    ("exit code without marker", 33, b"", 0.2, "", False, "exited 33"),
])
def test_judge_probe(case, returncode, debugcon, seconds, stderr, ok, words):
    result = accel.judge_probe(returncode, debugcon, seconds, stderr, timeout=8.0,
                               fast_enough=3.0)
    assert result.ok is ok, case
    assert words in result.detail, case


def test_tcg_never_asks_for_host_cpu():
    assert "host" not in accel.choose_accel(False)


def test_probe_sector_is_a_boot_sector():
    assert len(accel.PROBE_SECTOR) == 512
    assert accel.PROBE_SECTOR.endswith(b"\x55\xaa")
    assert accel.MARKER in accel.PROBE_SECTOR


def test_probe_argv_uses_given_accel_and_exit_device():
    argv = accel.probe_argv(["-accel", "kvm", "-cpu", "host"], "/x/probe.img", "/x/con")
    assert argv[1:5] == ["-accel", "kvm", "-cpu", "host"]
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in argv
    # boots from virtio-blk like a real image: some broken KVMs fail exactly there
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in argv


def test_file_cache_answers_without_probing(tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_process_cache", {})
    monkeypatch.setattr(accel.platform, "release", lambda: "9.9.9-test")
    (tmp_path / accel.CACHE_FILE).write_text(json.dumps(
        {"9.9.9-test": {"ok": True, "seconds": 1.5, "detail": "cached"}}))

    def no_probe(*args, **kwargs):
        raise AssertionError("probed despite the cache")

    monkeypatch.setattr(accel, "probe", no_probe)
    assert accel.kvm_works(tmp_path) is True


def test_missing_device_means_tcg_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_process_cache", {})
    monkeypatch.setattr(accel.platform, "release", lambda: "9.9.9-test")
    monkeypatch.setattr(accel, "KVM_DEVICE", str(tmp_path / "no-kvm"))
    result = accel.detect_kvm(tmp_path)
    assert not result.ok and "no-kvm" in result.detail
    stored = json.loads((tmp_path / accel.CACHE_FILE).read_text())
    assert stored["9.9.9-test"]["ok"] is False


def test_unreadable_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "_process_cache", {})
    monkeypatch.setattr(accel.platform, "release", lambda: "9.9.9-test")
    monkeypatch.setattr(accel, "KVM_DEVICE", str(tmp_path / "no-kvm"))
    (tmp_path / accel.CACHE_FILE).write_text("{not json")
    assert accel.kvm_works(tmp_path) is False
