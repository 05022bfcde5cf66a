"""KVM or TCG: decided by trying, because ``/dev/kvm`` existing proves nothing.

Some hosts expose a ``/dev/kvm`` that cannot run an ordinary guest (nested
PVM: ``-cpu host`` aborts on an MSR, other CPU models hang).  So
``kvm_works`` boots a 512-byte payload from a virtio disk with exactly the
accelerator arguments a real boot would use; it must switch to 64-bit long
mode with paging and tell qemu to exit with a known code.  It must also be
quick: such a device can run firmware and real mode so slowly (seconds for
what TCG does in 0.1 s) that GRUB never reaches the kernel.  The answer is
cached per process and in ``<work_dir>/accel.json`` keyed by the kernel release.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core import atomicfile, runner

LOG = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
KVM_DEVICE = "/dev/kvm"
CACHE_FILE = "accel.json"
PROBE_TIMEOUT = 8.0
# A working KVM gets from power-on to the payload in well under a second (TCG:
# ~0.1 s); slower means it emulates rather than accelerates.
PROBE_FAST_ENOUGH = 3.0
PROBE_DISK_SIZE = 1024 * 1024

# Boot sector (loaded by SeaBIOS at 0x7c00), assembled with GNU as from:
#   cli; zero ds/es/ss; sp=0x7c00; zero 0x1000-0x3fff
#   PML4[0]=0x2003, PDPT[0]=0x3003, PD[0]=0x83 (one 2 MiB identity page)
#   lgdt {null, 64-bit code 0x00AF9A000000FFFF, data 0x00CF92000000FFFF}
#   CR4.PAE; CR3=0x1000; EFER.LME; CR0 |= PG|PE; ljmp $0x08 to .code64
#   64-bit: ds=ss=0x10; rep outsb MARKER to port 0x402 (isa-debugcon)
#   outl 0x10 to port 0xf4 (isa-debug-exit: qemu exits (0x10 << 1) | 1 = 33); hlt loop
_PROBE_CODE = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cbf0010b9001831c0f3abc70600100320c7060020"
    "0330c706003083000f0116c07c0f20e06683c8200f22e066b8001000000f22d8"
    "66b9800000c00f32660d000100000f300f20c0660d010000800f22c0ea617c08"
    "0066b810008ed88ed066ba0204488d3514000000b91d000000f36e66baf400b8"
    "10000000eff4ebfd494d414745464c4545542d50524f42452d4c4f4e474d4f44"
    "452d4f4b0a0f1f000000000000000000ffff0000009aaf00ffff00000092cf00"
    "1700a87c")
PROBE_SECTOR = _PROBE_CODE.ljust(510, b"\0") + b"\x55\xaa"
MARKER = b"IMAGEFLEET-PROBE-LONGMODE-OK"
SUCCESS_EXIT = 33

_process_cache: dict[str, ProbeResult] = {}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    seconds: float
    detail: str


def choose_accel(kvm_result: bool) -> list[str]:
    """qemu arguments for the accelerator and CPU model.

    KVM passes the host CPU through.  TCG keeps qemu's default ``qemu64``
    model: never ``-cpu host`` (needs KVM), and ``max`` makes TCG emulate
    extensions the guest does not need.
    """
    if kvm_result:
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg"]


def probe_argv(accel_args: list[str], disk_path: str | os.PathLike,
               debugcon_path: str | os.PathLike) -> list[str]:
    """Firmware, disk and CPU mode path of a real boot, minus the OS."""
    return [QEMU, *accel_args, "-machine", "pc", "-m", "16", "-nodefaults",
            "-display", "none", "-no-reboot", "-serial", "none", "-monitor", "none",
            "-drive", f"file={disk_path},format=raw,if=none,id=disk0,readonly=on",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
            "-chardev", f"file,id=probecon,path={debugcon_path}",
            "-device", "isa-debugcon,iobase=0x402,chardev=probecon",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def probe(accel_args: list[str], *, timeout: float = PROBE_TIMEOUT,
          fast_enough: float | None = PROBE_FAST_ENOUGH,
          log_path: str | os.PathLike | None = None) -> ProbeResult:
    """Boot the probe with ``accel_args``; ok when it reached long mode in time."""
    with tempfile.TemporaryDirectory(prefix="imagefleet-accel-") as tmp:
        disk = Path(tmp, "probe.img")
        with open(disk, "wb") as f:
            f.write(PROBE_SECTOR)
            f.truncate(PROBE_DISK_SIZE)
        debugcon = Path(tmp, "debugcon.log")
        result = runner.run(probe_argv(accel_args, disk, debugcon), timeout=timeout,
                            log_path=log_path, check=False, step="accel-probe")
        seen = debugcon.read_bytes() if debugcon.exists() else b""
    return judge_probe(result.returncode, seen, result.seconds, result.stderr_tail,
                       timeout=timeout, fast_enough=fast_enough)


def judge_probe(returncode: int | None, debugcon: bytes, seconds: float, stderr_tail: str,
                *, timeout: float, fast_enough: float | None) -> ProbeResult:
    """What one probe run says about the accelerator (pure)."""
    reached = returncode == SUCCESS_EXIT and MARKER in debugcon
    ok = reached and (fast_enough is None or seconds <= fast_enough)
    if ok:
        detail = "guest reached 64-bit long mode"
    elif reached:
        detail = (f"guest reached long mode only after {seconds:.1f} s "
                  f"(limit {fast_enough:g} s): emulating, not accelerating")
    elif (returncode is None or returncode < 0) and seconds >= timeout - 0.5:
        detail = f"guest hung (no answer within {timeout:g} s)"
    else:
        last = _last_line(stderr_tail)
        detail = f"qemu exited {returncode}" + (f" ({last})" if last else "")
    return ProbeResult(ok=ok, seconds=round(seconds, 3), detail=detail)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def detect_kvm(work_dir: str | os.PathLike | None = None, *, refresh: bool = False,
               timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Whether KVM boots a guest here, with why; probes at most once per kernel."""
    key = platform.release()
    if not refresh and key in _process_cache:
        return _process_cache[key]
    cache_path = Path(work_dir, CACHE_FILE) if work_dir else None
    cached = None if refresh else _read_cache(cache_path, key)
    if cached is not None:
        _process_cache[key] = cached
        return cached
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        result = ProbeResult(ok=False, seconds=0.0, detail=f"{KVM_DEVICE} missing or not writable")
    else:
        log_path = Path(work_dir, "logs", "accel-probe.log") if work_dir else None
        result = probe(choose_accel(True), timeout=timeout, log_path=log_path)
    LOG.info("KVM %s: %s (%.1f s)", "works" if result.ok else "unusable", result.detail,
             result.seconds)
    _process_cache[key] = result
    if cache_path is not None:
        _write_cache(cache_path, key, result)
    return result


def kvm_works(work_dir: str | os.PathLike | None = None, *, refresh: bool = False) -> bool:
    return detect_kvm(work_dir, refresh=refresh).ok


def _read_cache(path: Path | None, key: str) -> ProbeResult | None:
    if path is None or not path.exists():
        return None
    try:
        entry = json.loads(path.read_text()).get(key)
        return ProbeResult(**entry) if entry else None
    except (ValueError, TypeError, AttributeError):
        LOG.warning("ignoring unreadable %s", path)
        return None


def _write_cache(path: Path, key: str, result: ProbeResult) -> None:
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except ValueError:
        data = {}
    data[key] = asdict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
