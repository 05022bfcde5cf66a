"""A network namespace per guest: where its qemu runs and its metadata service listens.

qemu's user network (slirp) turns a guest's TCP connection to an address
outside 10.0.2.0/24 into a ``connect()`` made by qemu's own process. Run in a
namespace of its own, that ``connect()`` can reach only the namespace's own
addresses: ``169.254.169.254`` on the namespace's loopback, where the guest's
metadata service listens (``localcloud.metadata``), and nothing else — the
host's interfaces never carry that address. Which namespace a request arrives
in says which guest sent it.

The namespace lives as long as an open descriptor of it (``Namespace.fd``) or
a process in it (qemu); nothing is mounted under ``/run/netns``, so a local
cloud that dies leaves none behind. Namespaces are entered by one dedicated
thread, which always returns to the process's own namespace, so the event
loop's and the default executor's threads never change namespace.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from localcloud.forwarding import pipe

LOG = logging.getLogger("localcloud.netns")

CLONE_NEWNET = 0x40000000
METADATA_ADDRESS = "169.254.169.254"
# qemu's hostfwd listens here inside the namespace; the host reaches it by relay().
GUEST_SSH_FORWARD = ("127.0.0.1", 2222)
SETUP = [["ip", "link", "set", "lo", "up"],
         ["ip", "addr", "add", f"{METADATA_ADDRESS}/32", "dev", "lo"]]

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns")
_host_fd: int | None = None


class NamespaceError(OSError):
    """No namespace could be made (not root, no iproute2): guests boot without one."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int) -> None:
    """Move the calling thread (or, after fork, the child) into the namespace ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def _host() -> int:
    global _host_fd
    if _host_fd is None:          # the main thread's namespace: it never moves
        _host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _host_fd


def _inside(fd: int | None, work: Callable[[], object]) -> object:
    """Run ``work`` on the namespace thread inside ``fd`` (None: a new one), then return."""
    host = _host()
    if fd is None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    else:
        setns(fd)
    try:
        return work()
    finally:
        setns(host)


def _create() -> int:
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for argv in SETUP:          # a child forked here starts in the new namespace
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode:
                raise NamespaceError(0, f"{' '.join(argv)}: {done.stderr.strip()}")
    except BaseException:
        os.close(fd)
        raise
    return fd


class Namespace:
    """One guest's network namespace (loopback up, ``169.254.169.254`` on it)."""

    def __init__(self, fd: int):
        self.fd = fd

    @classmethod
    async def create(cls) -> Namespace:
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(_thread, _inside, None, _create)
        except FileNotFoundError as e:
            raise NamespaceError(e.errno, f"{e.filename}: {e.strerror}") from e
        return cls(fd)

    async def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A non-blocking IPv4 socket that belongs to this namespace."""
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(
            _thread, _inside, self.fd, lambda: socket.socket(socket.AF_INET, kind))
        sock.setblocking(False)
        return sock

    async def listen(self, address: tuple[str, int]) -> socket.socket:
        sock = await self.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
        return sock

    async def connect(self, address: tuple[str, int]) -> socket.socket:
        sock = await self.socket()
        try:
            await asyncio.get_running_loop().sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    def enter(self) -> None:
        """For a child's ``preexec_fn``: run the child (qemu) in this namespace."""
        setns(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def relay(namespace: Namespace, target: tuple[str, int]) -> asyncio.AbstractServer:
    """A listener on a free port of the host's 127.0.0.1 that carries each connection to
    ``target`` inside ``namespace`` (where qemu's hostfwd listens)."""

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = await namespace.connect(target)
        except OSError:
            writer.close()
            return
        inner_reader, inner_writer = await asyncio.open_connection(sock=sock)
        await asyncio.gather(pipe(reader, inner_writer), pipe(inner_reader, writer),
                             return_exceptions=True)
    return await asyncio.start_server(carry, "127.0.0.1", 0)
