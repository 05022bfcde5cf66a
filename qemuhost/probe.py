"""The accelerator probe: one boot sector timed under an accelerator (``probe.S``)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-x86_64"
DISK_SIZE = 1024 * 1024
MARKER = b"IMAGEFLEET-PROBE-LONGMODE-OK"
SUCCESS_EXIT = 33
# probe.S assembled (GNU as + ld, text at 0x7c00); a unit test re-assembles it.
CODE = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cbf0010b9001831c0f3abc70600100320c7060020"
    "0330c706003083000f0116d87c0f20e06683c8200f22e066b8001000000f22d8"
    "66b9800000c00f32660d000100000f300f20c0660d010000800f22c0ea617c08"
    "0066b810008ed88ed08b0c25de7c000089c825ffff0000010c8500000100ffc9"
    "75ee66ba0204488d3514000000b91d000000f36e66baf400b810000000eff4eb"
    "fd494d414745464c4545542d50524f42452d4c4f4e474d4f44452d4f4b0a6690"
    "0000000000000000ffff0000009aaf00ffff00000092cf001700c07c000080f0"
    "fa02")
SECTOR = CODE.ljust(510, b"\0") + b"\x55\xaa"


@dataclass(frozen=True)
class ProbeResult:
    """One probe run: did the guest finish the payload, and how long did it take."""

    ok: bool
    seconds: float
    detail: str


def probe_argv(accel_args: list[str], disk: str | os.PathLike,
               debugcon: str | os.PathLike) -> list[str]:
    """Firmware, virtio disk and CPU mode path of a real boot, minus the OS."""
    return [QEMU, *accel_args, "-machine", "pc", "-m", "16", "-nodefaults",
            "-display", "none", "-no-reboot", "-serial", "none", "-monitor", "none",
            "-drive", f"file={disk},format=raw,if=none,id=disk0,readonly=on",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
            "-chardev", f"file,id=probecon,path={debugcon}",
            "-device", "isa-debugcon,iobase=0x402,chardev=probecon",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def run_probe(accel_args: list[str], timeout: float) -> ProbeResult:
    """Boot the probe under ``accel_args``; qemu is killed at ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="imagefleet-accel-") as tmp:
        disk, debugcon = Path(tmp, "probe.img"), Path(tmp, "debugcon.log")
        with open(disk, "wb") as f:
            f.write(SECTOR)
            f.truncate(DISK_SIZE)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(probe_argv(accel_args, disk, debugcon),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:
            return ProbeResult(False, 0.0, f"{QEMU}: {e.strerror or e}")
        try:
            _, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            code = None
        seconds = time.monotonic() - started
        seen = debugcon.read_bytes() if debugcon.exists() else b""
    return judge(code, seen, seconds, err.decode("utf-8", "replace"), timeout=timeout)


def judge(returncode: int | None, debugcon: bytes, seconds: float, stderr: str, *,
          timeout: float) -> ProbeResult:
    """What one probe run says (pure): finished, hung, or how qemu failed."""
    seconds = round(seconds, 3)
    if returncode == SUCCESS_EXIT and MARKER in debugcon:
        return ProbeResult(True, seconds, f"finished the probe in {seconds:.2f} s")
    if returncode is None:
        return ProbeResult(False, seconds, f"the probe guest made no progress in {timeout:g} s")
    last = _last_line(stderr)
    return ProbeResult(False, seconds, f"qemu exited {returncode}" + (f" ({last})" if last else ""))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
