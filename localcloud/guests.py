"""Real guests: each server is a qemu-system-x86_64 booting the image's own bytes.

The image blob is the backing file of a qcow2 overlay, so it is never written.
Networking is qemu user mode (the guest sees 10.0.2.15/24, gateway 10.0.2.2,
DNS 10.0.2.3, and reaches nothing outside) with one forward from a free
127.0.0.1 port to the guest's port 22; ``forwarding`` puts the server's
reachable addresses in front of it. KVM is used when a probe boot proves it
works, TCG otherwise. At most ``max_boots`` guests boot at once: a slot is held
from qemu's start until the guest answers on port 22 (or ``BOOT_WINDOW``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOG = logging.getLogger("localcloud.guests")

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
HOST = "127.0.0.1"
GUEST_NET = {"address": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2",
             "dns": "10.0.2.3"}
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc", "vhdx": "vhdx", "vmdk": "vmdk",
                "vdi": "vdi", "ami": "raw", "iso": "raw"}
MAX_MEMORY_MB = 1024
MIN_MEMORY_MB = 128
BOOT_WINDOW = 300.0          # seconds a boot may hold its slot without answering
STOP_GRACE = 5.0
PROBE_TIMEOUT = 5.0
PR_SET_PDEATHSIG = 1

# A boot sector that enters 64-bit long mode and makes qemu exit with code 33
# (isa-debug-exit) after writing MARKER to port 0x402: if KVM runs it, KVM works.
PROBE_SECTOR = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cbf0010b9001831c0f3abc70600100320c7060020"
    "0330c706003083000f0116c07c0f20e06683c8200f22e066b8001000000f22d8"
    "66b9800000c00f32660d000100000f300f20c0660d010000800f22c0ea617c08"
    "0066b810008ed88ed066ba0204488d3514000000b91d000000f36e66baf400b8"
    "10000000eff4ebfd494d414745464c4545542d50524f42452d4c4f4e474d4f44"
    "452d4f4b0a0f1f000000000000000000ffff0000009aaf00ffff00000092cf00"
    "1700a87c").ljust(510, b"\0") + b"\x55\xaa"
PROBE_MARKER = b"IMAGEFLEET-PROBE-LONGMODE-OK"


class BootError(RuntimeError):
    """The guest could not be started; the message becomes the server's fault."""


@dataclass(frozen=True)
class BootSpec:
    image: Path
    disk_format: str
    memory_mb: int
    cpus: int
    mac: str
    config_drive: Path | None = None
    kernel: Path | None = None        # AMI-style images: booted with -kernel/-initrd
    ramdisk: Path | None = None
    append: str = "root=/dev/vda console=ttyS0"


@dataclass
class Guest:
    server_id: str
    directory: Path
    ssh_port: int
    process: asyncio.subprocess.Process
    started: float
    answered: float | None = None
    stopping: bool = False
    watcher: asyncio.Task | None = field(default=None, repr=False)

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def running(self) -> bool:
        return self.process.returncode is None


def _die_with_parent() -> None:
    """In the child: qemu gets SIGKILL when the local cloud dies, so no guest outlives it."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def qemu_argv(spec: BootSpec, accel: list[str], overlay: Path, console: Path, port: int,
              name: str) -> list[str]:
    memory = max(MIN_MEMORY_MB, min(spec.memory_mb, MAX_MEMORY_MB))
    argv = [QEMU, "-name", name, *accel, "-machine", "pc", "-m", str(memory),
            "-smp", str(max(1, min(spec.cpus, 2))), "-nodefaults", "-display", "none",
            "-monitor", "none", "-no-reboot", "-rtc", "base=utc", "-serial", f"file:{console}",
            "-drive", f"file={overlay},format=qcow2,if=none,id=disk0,cache=unsafe",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
            "-nic", f"user,model=virtio-net-pci,mac={spec.mac},restrict=on,"
                    f"hostfwd=tcp:{HOST}:{port}-:22",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0"]
    if spec.kernel:
        argv += ["-kernel", str(spec.kernel), "-append", spec.append]
        if spec.ramdisk:
            argv += ["-initrd", str(spec.ramdisk)]
    if spec.config_drive:
        argv += ["-drive", f"file={spec.config_drive},format=raw,if=ide,media=cdrom,"
                           "readonly=on"]
    return argv


def probe_kvm() -> tuple[bool, str]:
    """Boot the probe sector under KVM; (works, why)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm missing or not writable"
    with tempfile.TemporaryDirectory(prefix="localcloud-kvm-") as tmp:
        sector, debugcon = Path(tmp, "probe.img"), Path(tmp, "debugcon.log")
        sector.write_bytes(PROBE_SECTOR)
        argv = [QEMU, "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "16",
                "-nodefaults", "-display", "none", "-no-reboot", "-serial", "none",
                "-monitor", "none", "-drive", f"file={sector},format=raw,if=floppy",
                "-chardev", f"file,id=probecon,path={debugcon}",
                "-device", "isa-debugcon,iobase=0x402,chardev=probecon",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return False, f"probe guest hung for {PROBE_TIMEOUT:g} s"
        except OSError as e:
            return False, str(e)
        ok = done.returncode == 33 and PROBE_MARKER in debugcon.read_bytes()
        return ok, "probe reached long mode" if ok else f"qemu exited {done.returncode}"


class Hypervisor:
    """Every guest of the process, whichever cloud owns it, and the boot slots they share."""

    def __init__(self, root: Path, max_boots: int = 2, accel: str = "auto"):
        self.root = Path(root)
        self.max_boots = max_boots
        self.accel_choice = accel
        self.guests: dict[str, Guest] = {}
        self._slots: asyncio.Semaphore | None = None
        self._accel: asyncio.Task | None = None
        self.accel_detail = ""

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self.max_boots)

    async def accel(self) -> list[str]:
        """The accelerator's qemu arguments, probed at the first boot of this process."""
        if self._accel is None:
            self._accel = asyncio.get_running_loop().create_task(self._choose_accel())
        return await self._accel

    async def _choose_accel(self) -> list[str]:
        if self.accel_choice == "tcg":
            self.accel_detail = "tcg (asked)"
            return ["-accel", "tcg"]
        ok, why = await asyncio.to_thread(probe_kvm)
        if self.accel_choice == "kvm" or ok:
            self.accel_detail = f"kvm ({why})"
            return ["-accel", "kvm", "-cpu", "host"]
        self.accel_detail = f"tcg ({why})"
        LOG.info("KVM unusable: %s; guests run under TCG", why)
        return ["-accel", "tcg"]

    def directory(self, server_id: str) -> Path:
        return self.root / server_id

    async def boot(self, server_id: str, spec: BootSpec,
                   on_exit: Callable[[Guest, int], None]) -> Guest:
        """Start qemu once a boot slot is free; returns when qemu runs (Nova's ACTIVE)."""
        assert self._slots is not None
        await self._slots.acquire()
        try:
            accel = await self.accel()
            directory = self.directory(server_id)
            directory.mkdir(parents=True, exist_ok=True)
            overlay = directory / "disk.qcow2"
            await _run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F",
                        QEMU_FORMATS.get(spec.disk_format, spec.disk_format), "-b",
                        str(spec.image.resolve()), str(overlay)])
            port = free_port()
            argv = qemu_argv(spec, accel, overlay, directory / "console.log", port, server_id)
            (directory / "qemu.argv").write_text(" ".join(argv) + "\n")
            log = open(directory / "qemu.log", "ab")
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    preexec_fn=_die_with_parent)
            finally:
                log.close()
            guest = Guest(server_id, directory, port, process, time.monotonic())
            self.guests[server_id] = guest
            await asyncio.sleep(0.3)
            if not guest.running:
                self.guests.pop(server_id, None)
                raise BootError(f"qemu exited {process.returncode}: {self._qemu_tail(guest)}")
        except BaseException:
            self._slots.release()
            raise
        guest.watcher = asyncio.get_running_loop().create_task(self._watch(guest, on_exit))
        return guest

    async def _watch(self, guest: Guest, on_exit: Callable[[Guest, int], None]) -> None:
        """Hold the boot slot until the guest answers on port 22, then wait for qemu's end."""
        assert self._slots is not None
        try:
            deadline = guest.started + BOOT_WINDOW
            while guest.running and time.monotonic() < deadline:
                if await _banner(guest.ssh_port):
                    guest.answered = time.monotonic()
                    break
                await asyncio.sleep(1.0)
        finally:
            self._slots.release()
        code = await guest.process.wait()
        if self.guests.get(guest.server_id) is guest:
            del self.guests[guest.server_id]
        if not guest.stopping:
            on_exit(guest, code)

    def _qemu_tail(self, guest: Guest) -> str:
        try:
            lines = (guest.directory / "qemu.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(line for line in lines[-3:] if line.strip())

    async def stop(self, server_id: str) -> None:
        guest = self.guests.pop(server_id, None)
        if guest is not None and guest.running:
            guest.stopping = True
            guest.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(guest.process.wait(), STOP_GRACE)
            except TimeoutError:
                guest.process.kill()
                await guest.process.wait()
        if guest is not None and guest.watcher is not None:
            await asyncio.gather(guest.watcher, return_exceptions=True)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(sid) for sid in list(self.guests)))

    def forget(self, server_id: str) -> None:
        """Remove what a deleted server left on disk (overlay, config drive, logs)."""
        directory = self.directory(server_id)
        if directory.is_dir():
            for path in directory.iterdir():
                path.unlink(missing_ok=True)
            directory.rmdir()

    def console(self, server_id: str, length: int | None) -> str:
        try:
            text = (self.directory(server_id) / "console.log").read_bytes().decode(
                "utf-8", "replace")
        except OSError:
            return ""
        lines = text.replace("\r\n", "\n").splitlines(keepends=True)
        return "".join(lines[-length:] if length else lines)

    def processes(self) -> list[dict]:
        return [{"server_id": g.server_id, "pid": g.process.pid, "ssh_port": g.ssh_port}
                for g in self.guests.values() if g.running]


async def _run(argv: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode:
        raise BootError(f"{argv[0]} exited {process.returncode}: "
                        f"{output.decode(errors='replace').strip()[-300:]}")


async def _banner(port: int) -> bool:
    """Whether something in the guest sends an SSH banner on port 22."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        data = await asyncio.wait_for(reader.read(64), 3)
        return data.startswith(b"SSH-")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
