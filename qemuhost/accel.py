"""KVM or TCG for every qemu boot on this host: KVM only where it is shown to be faster.

``/dev/kvm`` existing proves nothing.  On some hosts ``-cpu host`` aborts; on
others KVM runs firmware and real mode so slowly that it is emulating, and a
Linux guest then hangs after the boot loader.  So in ``auto`` the probe
(``probe.S``) runs under TCG and then under KVM in the same process, and KVM
is chosen only when it finished the same payload in well under TCG's time.
The answer is cached per process and in a JSON file keyed by the kernel
release and the qemu version; a KVM boot that fails anyway replaces a cached
"kvm" with "tcg" (``kvm_failed``), after probing again.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from qemuhost import probe
from qemuhost.probe import ProbeResult

LOG = logging.getLogger(__name__)

ENV = "IMAGEFLEET_ACCEL"
SETTINGS = ("auto", "kvm", "tcg")
KVM_DEVICE = "/dev/kvm"
TCG_TIMEOUT = 20.0
# KVM must finish the probe in this share of TCG's time to count as accelerating.
KVM_FASTER = 0.75
# ...and gets TCG's time plus this much before it counts as making no progress.
KVM_GRACE = 1.5

_process_cache: dict[str, Decision] = {}


@dataclass(frozen=True)
class Decision:
    """The accelerator for this host's boots, and why."""

    accel: str                      # "kvm" or "tcg"
    why: str
    source: str                     # "setting", "probe", "cache" or "boot"
    kvm_seconds: float | None = None
    tcg_seconds: float | None = None

    @property
    def args(self) -> list[str]:
        return accel_args(self.accel)

    def to_dict(self) -> dict:
        return asdict(self)


def accel_args(accel: str) -> list[str]:
    """qemu arguments: KVM passes the host CPU through; TCG keeps qemu's default model
    (``-cpu host`` needs KVM, ``max`` makes TCG emulate what the guest does not need)."""
    return ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg"]


def resolve_setting(configured: str | None = None, environ=None) -> str:
    """``$IMAGEFLEET_ACCEL`` over the configured value over ``auto``; ``ValueError`` if unknown."""
    environ = os.environ if environ is None else environ
    value = (environ.get(ENV) or configured or "auto").strip().lower()
    if value not in SETTINGS:
        source = ENV if environ.get(ENV) else "accel"
        raise ValueError(f"{source}: {value!r} is not one of {', '.join(SETTINGS)}")
    return value


def judge(kvm: ProbeResult | None, tcg: ProbeResult, device: str = KVM_DEVICE) -> Decision:
    """The decision from the two probe runs (pure); ``kvm`` is None without a usable device."""
    seconds = {"kvm_seconds": kvm.seconds if kvm else None, "tcg_seconds": tcg.seconds}
    if kvm is None:
        return Decision("tcg", f"{device} missing or not writable", "probe", **seconds)
    if not kvm.ok:
        return Decision("tcg", f"KVM: {kvm.detail}", "probe", **seconds)
    if not tcg.ok or kvm.seconds <= KVM_FASTER * tcg.seconds:
        return Decision("kvm", f"KVM finished the probe in {kvm.seconds:.2f} s, "
                               f"TCG in {tcg.seconds:.2f} s", "probe", **seconds)
    return Decision("tcg", f"KVM took {kvm.seconds:.2f} s for what TCG did in "
                           f"{tcg.seconds:.2f} s: emulating, not accelerating", "probe", **seconds)


def run_probes(device: str = KVM_DEVICE) -> Decision:
    """Time the probe under TCG, then under KVM with a bound derived from TCG's time."""
    tcg = probe.run_probe(accel_args("tcg"), TCG_TIMEOUT)
    if not os.access(device, os.R_OK | os.W_OK):
        return judge(None, tcg, device)
    kvm = probe.run_probe(accel_args("kvm"), tcg.seconds + KVM_GRACE)
    return judge(kvm, tcg, device)


def host_key() -> str:
    """What the cached answer depends on: the kernel release and the qemu version."""
    return f"{platform.release()} {qemu_version()}"


@functools.cache
def qemu_version() -> str:
    """Asked once per process: every decision keys on it, and qemu does not change under us."""
    try:
        out = subprocess.run([probe.QEMU, "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "qemu ?"
    first = out.strip().splitlines()[0] if out.strip() else "qemu ?"
    return first.replace("QEMU emulator version ", "qemu ")


def decide(setting: str = "auto", cache_path: str | os.PathLike | None = None, *,
           refresh: bool = False) -> Decision:
    """The accelerator for the next boot: the setting, else the cache, else the probes."""
    if setting in ("kvm", "tcg"):
        return Decision(setting, f"{setting} asked for (accel setting or ${ENV})", "setting")
    key = host_key()
    if not refresh and key in _process_cache:
        return _process_cache[key]
    cached = None if refresh else _read(cache_path, key)
    if cached is not None:
        decision = Decision(**{**cached, "source": "cache"})
    else:
        decision = run_probes()
        LOG.info("accelerator: %s (%s)", decision.accel, decision.why)
        _write(cache_path, key, decision)
    _process_cache[key] = decision
    return decision


def kvm_failed(cache_path: str | os.PathLike | None, why: str) -> Decision:
    """A KVM boot failed or stalled: probe again, and never trust KVM again on this key."""
    key = host_key()
    _process_cache.pop(key, None)
    _drop(cache_path, key)
    again = decide("auto", cache_path, refresh=True)
    if again.accel == "kvm":
        again = Decision("tcg", f"a KVM boot failed although the probe passed: {why}", "boot",
                         again.kvm_seconds, again.tcg_seconds)
        _write(cache_path, key, again)
        _process_cache[key] = again
    LOG.warning("accelerator: KVM boot failed (%s); now %s (%s)", why, again.accel, again.why)
    return again


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read(cache_path, key: str) -> dict | None:
    if cache_path is None:
        return None
    entry = _load(Path(cache_path)).get(key)
    fields = set(Decision.__dataclass_fields__)
    if isinstance(entry, dict) and entry.get("accel") in ("kvm", "tcg") and set(entry) <= fields:
        return entry
    return None


def _write(cache_path, key: str, decision: Decision) -> None:
    if cache_path is not None:
        _update(Path(cache_path), lambda data: data.__setitem__(key, decision.to_dict()))


def _drop(cache_path, key: str) -> None:
    if cache_path is not None:
        _update(Path(cache_path), lambda data: data.pop(key, None))


def _update(path: Path, change) -> None:
    """Read, change and atomically replace the cache file (a torn file is never seen)."""
    data = _load(path)
    change(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
