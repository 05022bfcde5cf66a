"""Boot a disk image locally under qemu, the way a cloud would, without changing it.

The image is the backing file of a throw-away qcow2 overlay, so any format
qemu reads (raw, qcow2, vhd as ``vpc``) boots unmodified.  Networking is qemu
user mode, restricted (the guest reaches nothing outside) with one forward
from ``127.0.0.1:<port>`` to the guest's port 22.  The serial console goes to
a log file, which is what a failure report quotes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import process, runner
from pipeline.core.errors import AccelStalled, BootError, ConfigError
from pipeline.core.ports import free_port
from pipeline.image.configdrive import NetworkSpec
from qemuhost import accel, console, probe
from qemuhost.formats import QEMU_DRIVERS

LOG = logging.getLogger(__name__)

QEMU = probe.QEMU
ACCEL_CACHE = "accel.json"
QEMU_IMG = "qemu-img"
HOST = "127.0.0.1"
DEFAULT_MAC = "52:54:00:12:34:56"
# qemu user-mode networking's fixed layout (slirp defaults).
USER_NET_GUEST = "10.0.2.15/24"
USER_NET_GATEWAY = "10.0.2.2"
USER_NET_DNS = "10.0.2.3"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")


@dataclass
class Vm:
    host: str
    ssh_port: int
    console_log: Path
    qemu_log: Path
    pid: int
    mac: str
    accel: list[str]
    started_at: float  # time.monotonic() when qemu was started
    _proc: subprocess.Popen = field(repr=False)
    stall_timeout: float = console.STALL_SECONDS
    _progressed: bool = field(default=False, repr=False)

    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def accel_name(self) -> str:
        return "kvm" if "kvm" in self.accel else "tcg"

    def past_boot_loader(self) -> bool:
        """Whether the console shows the kernel or userland (remembered once seen)."""
        if not self._progressed:
            self._progressed = console.past_boot_loader(console.read_console(self.console_log))
        return self._progressed

    def check(self, where: str | None = None) -> None:
        """Raise ``BootError`` if qemu died, ``AccelStalled`` if a KVM boot stopped early."""
        if not self.alive():
            raise BootError(self.describe_exit(), where=where)
        elapsed = time.monotonic() - self.started_at
        if (self.accel_name == "kvm" and elapsed >= self.stall_timeout
                and not self.past_boot_loader()):
            tail = self.console_tail(1)
            raise AccelStalled(
                f"KVM boot showed nothing past the boot loader in {elapsed:.0f} s "
                f"(last console line: {tail[-1] if tail else '(empty)'})", where=where)

    @property
    def exit_code(self) -> int | None:
        return self._proc.poll()

    def console_tail(self, lines: int = 8) -> list[str]:
        return _tail(self.console_log, lines)

    def describe_exit(self) -> str:
        """One line for a ``BootError``: exit code, qemu's complaint, last console lines."""
        code = self.exit_code
        text = f"qemu exited {code} before the guest answered"
        complaint = [line for line in _tail(self.qemu_log, 3) if not line.startswith("$ ")]
        if complaint:
            text += f" ({complaint[-1][:200]})"
        console = self.console_tail(5)
        text += "; console: " + (" | ".join(console) if console else "(empty)")
        return text + f"; log: {self.console_log}"


def qemu_format(disk_format: str) -> str:
    try:
        return QEMU_DRIVERS[disk_format.lower()]
    except KeyError:
        raise ConfigError(f"qemu cannot boot disk format {disk_format!r}",
                          key="disk_format") from None


def user_network(mac: str = DEFAULT_MAC, *, static: bool = False) -> NetworkSpec:
    """The config-drive network description matching qemu user-mode networking."""
    if not static:
        return NetworkSpec(mac=mac, dhcp=True)
    return NetworkSpec(mac=mac, dhcp=False, address=USER_NET_GUEST,
                       gateway=USER_NET_GATEWAY, dns=(USER_NET_DNS,))


def qemu_argv(*, overlay: str | os.PathLike, accel_args: Sequence[str], memory_mb: int,
              cpus: int, ssh_port: int, mac: str, console_log: str | os.PathLike,
              config_drive: str | os.PathLike | None = None,
              name: str = "imagefleet") -> list[str]:
    """The qemu command line; pure, so the choices are testable and logged."""
    argv = [QEMU, "-name", name, *accel_args, "-machine", "pc", "-m", str(memory_mb),
            "-smp", str(cpus), "-nodefaults", "-display", "none", "-monitor", "none",
            "-no-reboot", "-rtc", "base=utc",
            "-serial", f"file:{console_log}",
            # overlay is thrown away afterwards: no need to flush it
            "-drive", f"file={overlay},format=qcow2,if=none,id=disk0,cache=unsafe",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
            "-nic", f"user,model=virtio-net-pci,mac={mac},restrict=on,"
                    f"hostfwd=tcp:{HOST}:{ssh_port}-:22",
            # first-boot key generation must not stall on entropy under TCG
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0"]
    if config_drive is not None:
        argv += ["-drive", f"file={config_drive},format=raw,if=ide,media=cdrom,readonly=on"]
    return argv


def create_overlay(image_path: str | os.PathLike, disk_format: str,
                   overlay: str | os.PathLike, *,
                   log_path: str | os.PathLike | None = None) -> Path:
    """A qcow2 whose backing file is the image: every guest write lands in the overlay."""
    backing = Path(image_path).resolve()
    if not backing.is_file():
        raise ConfigError(f"no such image: {backing}", key="image")
    runner.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", qemu_format(disk_format),
                "-b", str(backing), str(overlay)], log_path=log_path, step="overlay")
    return Path(overlay)


@contextlib.contextmanager
def boot(image_path: str | os.PathLike, disk_format: str, *, work_dir: str | os.PathLike,
         log_dir: str | os.PathLike | None = None,
         config_drive: str | os.PathLike | None = None, memory_mb: int = 1024,
         cpus: int = 1, ssh_port: int | None = None, mac: str = DEFAULT_MAC,
         accel_args: Sequence[str] | None = None, name: str | None = None,
         stall_timeout: float = console.STALL_SECONDS) -> Iterator[Vm]:
    """Run the image in qemu for the duration of the ``with`` block.

    ``accel_args`` defaults to what ``qemuhost.accel.decide`` says for this host
    (cached in ``<work_dir>/accel.json``).  A KVM boot that shows nothing past
    the boot loader within ``stall_timeout`` fails ``Vm.check`` with ``AccelStalled``.
    On exit qemu's process group is killed and the overlay deleted; the logs stay.
    """
    work_dir = Path(work_dir)
    log_dir = Path(log_dir) if log_dir else work_dir / "logs"
    work_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"boot-{uuid.uuid4().hex[:8]}"
    if accel_args is None:
        accel_args = accel.decide(accel.resolve_setting(), work_dir / ACCEL_CACHE).args
    port = ssh_port or free_port()
    console_log = (log_dir / f"{name}-console.log").absolute()
    qemu_log = log_dir / f"{name}-qemu.log"
    console_log.unlink(missing_ok=True)
    overlay = (work_dir / f"{name}-overlay.qcow2").absolute()
    create_overlay(image_path, disk_format, overlay, log_path=qemu_log)
    proc = None
    try:
        argv = qemu_argv(overlay=overlay, accel_args=accel_args, memory_mb=memory_mb,
                         cpus=cpus, ssh_port=port, mac=mac, console_log=console_log,
                         config_drive=Path(config_drive).absolute() if config_drive else None,
                         name=name)
        started = time.monotonic()
        proc = process.spawn(argv, qemu_log, step="boot")
        LOG.info("booting %s (pid %d, ssh on %s:%d, console %s)", image_path, proc.pid,
                 HOST, port, console_log)
        yield Vm(host=HOST, ssh_port=port, console_log=console_log, qemu_log=qemu_log,
                 pid=proc.pid, mac=mac, accel=list(accel_args), started_at=started,
                 _proc=proc, stall_timeout=stall_timeout)
    finally:
        if proc is not None:
            process.stop(proc)
        overlay.unlink(missing_ok=True)


def _tail(path: Path, lines: int, max_bytes: int = 65536) -> list[str]:
    """Last non-empty lines of a log, terminal escapes removed."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    cleaned = (_ANSI.sub("", line).strip() for line in text.splitlines())
    return [line for line in cleaned if line][-lines:]
