"""Real guests: each server is a qemu-system-x86_64 booting the image's own bytes.

The image blob is the backing file of a qcow2 overlay, so it is never written.
Networking is qemu user mode (the guest sees 10.0.2.15/24, gateway 10.0.2.2,
DNS 10.0.2.3). qemu runs in a network namespace of the guest's own
(``localcloud.netns``), so the guest reaches nothing outside but
``169.254.169.254``, where its own metadata service answers
(``localcloud.metadata``); a relay carries a free 127.0.0.1 port of the host to
qemu's forward of the guest's port 22, and ``forwarding`` puts the server's
reachable addresses in front of that. Like Nova's libvirt driver, qemu
presents SMBIOS product "OpenStack Nova" and the server's id as the system
UUID, which is how cloud-init knows it is on OpenStack. Where no namespace can
be made (not root), qemu runs with ``restrict=on`` and forwards the host port
itself: no metadata service. The accelerator is ``qemuhost.accel``'s
decision, the pipeline's own; a KVM guest whose console shows nothing past the
boot loader within ``stall_timeout`` (or whose qemu refuses KVM) is started
again under TCG. At most ``max_boots`` guests boot at once: a slot is held
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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localcloud import metadata, netns
from qemuhost import accel as qemu_accel
from qemuhost import console, probe
from qemuhost.formats import QEMU_DRIVERS

LOG = logging.getLogger("localcloud.guests")

QEMU = probe.QEMU
QEMU_IMG = "qemu-img"
HOST = "127.0.0.1"
GUEST_NET = {"address": "10.0.2.15", "netmask": "255.255.255.0", "gateway": "10.0.2.2",
             "dns": "10.0.2.3"}
ACCEL_CACHE = "accel.json"
MAX_MEMORY_MB = 1024
MIN_MEMORY_MB = 128
BOOT_WINDOW = 300.0          # seconds a boot may hold its slot without answering
STOP_GRACE = 5.0
PR_SET_PDEATHSIG = 1
# nova/version.py NOVA_VENDOR, NOVA_PRODUCT; nova/virt/libvirt/driver.py
# _get_guest_config_sysinfo puts them and the instance's uuid in SMBIOS type 1.
SMBIOS_VENDOR = "OpenStack Foundation"
SMBIOS_PRODUCT = "OpenStack Nova"

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
    metadata: dict[str, bytes] | None = None   # None: no metadata service (metadata.documents)
    kernel: Path | None = None        # AMI-style images: booted with -kernel/-initrd
    ramdisk: Path | None = None
    append: str = "root=/dev/vda console=ttyS0"
    volume: bool = False              # ``image`` is a raw volume the guest writes itself


@dataclass
class Guest:
    server_id: str
    directory: Path
    ssh_port: int
    process: asyncio.subprocess.Process | None
    started: float
    accel: str = "tcg"
    answered: float | None = None
    fallback: str | None = None
    stopping: bool = False
    watcher: asyncio.Task | None = field(default=None, repr=False)
    namespace: netns.Namespace | None = field(default=None, repr=False)
    servers: list[asyncio.AbstractServer] = field(default_factory=list, repr=False)

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def _die_with_parent() -> None:
    """In the child: qemu gets SIGKILL when the local cloud dies, so no guest outlives it."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _child_setup(namespace: netns.Namespace | None) -> Callable[[], None]:
    def setup() -> None:
        _die_with_parent()
        if namespace is not None:
            namespace.enter()
    return setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def qemu_argv(spec: BootSpec, accel: list[str], overlay: Path, console: Path, port: int,
              name: str, namespaced: bool = False) -> list[str]:
    """``namespaced``: qemu runs in the guest's namespace, whose only outside address is
    the metadata service, so user networking is not restricted and the port-22 forward
    listens on the namespace's loopback (``netns.GUEST_SSH_FORWARD``)."""
    memory = max(MIN_MEMORY_MB, min(spec.memory_mb, MAX_MEMORY_MB))
    if namespaced:
        host, port = netns.GUEST_SSH_FORWARD
        nic = f"restrict=off,hostfwd=tcp:{host}:{port}-:22"
    else:
        nic = f"restrict=on,hostfwd=tcp:{HOST}:{port}-:22"
    disk = f"file={spec.image},format=raw" if spec.volume else f"file={overlay},format=qcow2"
    argv = [QEMU, "-name", name, *accel, "-machine", "pc", "-m", str(memory),
            "-smp", str(max(1, min(spec.cpus, 2))), "-nodefaults", "-display", "none",
            "-monitor", "none", "-no-reboot", "-rtc", "base=utc", "-serial", f"file:{console}",
            "-drive", f"{disk},if=none,id=disk0,cache=unsafe",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
            "-nic", f"user,model=virtio-net-pci,mac={spec.mac},{nic}",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0"]
    if _is_uuid(name):
        argv += ["-uuid", name, "-smbios", f"type=1,manufacturer={SMBIOS_VENDOR},"
                 f"product={SMBIOS_PRODUCT},serial={name},uuid={name},family=Virtual Machine"]
    if spec.kernel:
        argv += ["-kernel", str(spec.kernel), "-append", spec.append]
        if spec.ramdisk:
            argv += ["-initrd", str(spec.ramdisk)]
    if spec.config_drive:
        argv += ["-drive", f"file={spec.config_drive},format=raw,if=ide,media=cdrom,"
                           "readonly=on"]
    return argv


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class Hypervisor:
    """Every guest of the process, whichever cloud owns it, and the boot slots they share."""

    def __init__(self, root: Path, max_boots: int = 2, accel: str = "auto",
                 stall_timeout: float = console.STALL_SECONDS):
        self.root = Path(root)
        self.max_boots = max_boots
        if accel not in qemu_accel.SETTINGS:
            raise ValueError(f"accel {accel!r} is not one of {', '.join(qemu_accel.SETTINGS)}")
        self.accel_setting = accel
        self.stall_timeout = stall_timeout
        self.guests: dict[str, Guest] = {}
        self._slots: asyncio.Semaphore | None = None
        self._decision: qemu_accel.Decision | None = None
        self._deciding: asyncio.Lock | None = None
        self.namespaces = True              # until one cannot be made
        self.metadata_log: dict[str, list[str]] = {}   # server id -> paths it fetched

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self.max_boots)
        self._deciding = asyncio.Lock()

    @property
    def accel_detail(self) -> str:
        d = self._decision
        return f"{d.accel} ({d.why})" if d else ""

    async def decision(self) -> qemu_accel.Decision:
        """The accelerator for the next boot: decided (probed or cached) once per process."""
        assert self._deciding is not None
        async with self._deciding:
            if self._decision is None:
                self._decision = await asyncio.to_thread(
                    qemu_accel.decide, self.accel_setting, self.root / ACCEL_CACHE)
                LOG.info("guests run under %s", self.accel_detail)
        return self._decision

    def directory(self, server_id: str) -> Path:
        return self.root / server_id

    async def boot(self, server_id: str, spec: BootSpec,
                   on_exit: Callable[[Guest, int], None]) -> Guest:
        """Start qemu once a boot slot is free; returns when qemu runs (Nova's ACTIVE)."""
        assert self._slots is not None
        await self._slots.acquire()
        guest = None
        try:
            decision = await self.decision()
            directory = self.directory(server_id)
            directory.mkdir(parents=True, exist_ok=True)
            if not spec.volume:
                await _run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F",
                            QEMU_DRIVERS.get(spec.disk_format, spec.disk_format), "-b",
                            str(spec.image.resolve()), str(directory / "disk.qcow2")])
            guest = Guest(server_id, directory, 0, None, 0.0, decision.accel)
            await self._network(guest, spec)
            await self._start(guest, spec)
            self.guests[server_id] = guest
            await asyncio.sleep(0.3)
            if not guest.running and guest.accel == "kvm":
                await self._fall_back(guest, spec, f"qemu exited {guest.process.returncode}: "
                                                   f"{self._qemu_tail(guest)}")
                await asyncio.sleep(0.3)
            if not guest.running:
                self.guests.pop(server_id, None)
                raise BootError(f"qemu exited {guest.process.returncode}: "
                                f"{self._qemu_tail(guest)}")
        except BaseException:
            self._slots.release()
            if guest is not None:
                self._release(guest)
            raise
        guest.watcher = asyncio.get_running_loop().create_task(
            self._watch(guest, spec, on_exit))
        return guest

    async def _network(self, guest: Guest, spec: BootSpec) -> None:
        """The guest's namespace, its metadata service and the relay to its port 22."""
        if self.namespaces:
            try:
                guest.namespace = await netns.Namespace.create()
            except netns.NamespaceError as e:
                self.namespaces = False
                LOG.warning("guests run without network namespaces, so without a metadata "
                            "service: %s", e)
        if guest.namespace is None:
            guest.ssh_port = free_port()
            return
        if spec.metadata is not None:
            log = self.metadata_log.setdefault(guest.server_id, [])
            sock = await guest.namespace.listen((netns.METADATA_ADDRESS, 80))
            guest.servers.append(await metadata.serve(sock, spec.metadata, log.append))
        relay = await netns.relay(guest.namespace, netns.GUEST_SSH_FORWARD)
        guest.servers.append(relay)
        guest.ssh_port = relay.sockets[0].getsockname()[1]

    def _release(self, guest: Guest) -> None:
        for server in guest.servers:
            server.close()
        guest.servers.clear()
        if guest.namespace is not None:
            guest.namespace.close()

    async def _start(self, guest: Guest, spec: BootSpec) -> None:
        directory = guest.directory
        argv = qemu_argv(spec, qemu_accel.accel_args(guest.accel), directory / "disk.qcow2",
                         guest.console_log, guest.ssh_port, guest.server_id,
                         namespaced=guest.namespace is not None)
        (directory / "qemu.argv").write_text(" ".join(argv) + "\n")
        with open(directory / "qemu.log", "ab") as log:
            guest.process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=_child_setup(guest.namespace))
        guest.started = time.monotonic()

    async def _fall_back(self, guest: Guest, spec: BootSpec, why: str) -> None:
        """Stop a KVM guest that failed before its kernel ran and start it under TCG."""
        lost = time.monotonic() - guest.started
        if guest.running:
            guest.process.kill()
            await guest.process.wait()
        if self.accel_setting == "auto":
            self._decision = await asyncio.to_thread(
                qemu_accel.kvm_failed, self.root / ACCEL_CACHE, why)
        guest.fallback = (f"KVM boot failed after {lost:.0f} s ({why}); "
                          "booted again under TCG")
        LOG.warning("%s: %s", guest.server_id, guest.fallback)
        if guest.console_log.exists():
            guest.console_log.replace(guest.directory / "console-kvm.log")
        if guest.stopping:
            return
        guest.accel = "tcg"
        await self._start(guest, spec)

    async def _watch(self, guest: Guest, spec: BootSpec,
                     on_exit: Callable[[Guest, int], None]) -> None:
        """Hold the boot slot until the guest answers on port 22, then wait for qemu's end."""
        assert self._slots is not None
        try:
            while guest.running and time.monotonic() < guest.started + BOOT_WINDOW:
                if await _banner(guest.ssh_port):
                    guest.answered = time.monotonic()
                    break
                if console.stalled(guest.accel, time.monotonic() - guest.started,
                                   console.read_console(guest.console_log),
                                   self.stall_timeout):
                    await self._fall_back(guest, spec, "no console output past the boot "
                                          f"loader in {self.stall_timeout:g} s")
                    continue
                await asyncio.sleep(1.0)
        finally:
            self._slots.release()
        code = await guest.process.wait()
        self._release(guest)
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
        if guest is not None:
            self._release(guest)

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
        return [{"server_id": g.server_id, "pid": g.process.pid, "ssh_port": g.ssh_port,
                 "accel": g.accel, "fallback": g.fallback,
                 "namespace": g.namespace is not None}
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
