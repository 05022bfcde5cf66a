"""Port 22 of every address that is reachable in the cloud's shape, forwarded to its guest.

A listener exists on ``(address, 22)`` only while the address is reachable the way
it would be on that vendor (a public or routable fixed address: while the server
exists; a floating IP: while associated). Each accepted connection asks the
cloud what to do, given the peer: ``forward`` to the guest's qemu port, ``reset``
(no security-group rule opens the port, or nothing runs), or ``silent`` (a guest
that never answers: the connection stays open and nothing is ever sent).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger("localcloud.forwarding")
SSH_PORT = 22
CHUNK = 65536


@dataclass(frozen=True)
class Decision:
    action: str                  # "forward" | "reset" | "silent"
    port: int = 0


Resolver = Callable[[str], Decision]      # peer address -> what to do


class Forwarder:
    """Listeners of the whole process, grouped by the cloud that owns each address."""

    def __init__(self, port: int = SSH_PORT):
        self.port = port
        self._servers: dict[str, tuple[str, asyncio.AbstractServer]] = {}
        self._resolvers: dict[str, Resolver] = {}
        self._silent: set[asyncio.StreamWriter] = set()
        self._lock = asyncio.Lock()

    def addresses(self, cloud: str | None = None) -> list[str]:
        return sorted(a for a, (c, _) in self._servers.items() if cloud in (None, c))

    async def sync(self, cloud: str, wanted: dict[str, Resolver]) -> None:
        """Listen on exactly ``wanted`` for ``cloud``: open new listeners, close gone ones."""
        async with self._lock:
            for address, (owner, server) in list(self._servers.items()):
                if owner == cloud and address not in wanted:
                    server.close()
                    del self._servers[address]
                    self._resolvers.pop(address, None)
            for address, resolver in wanted.items():
                self._resolvers[address] = resolver
                if address in self._servers:
                    continue
                try:
                    server = await asyncio.start_server(
                        lambda r, w, a=address: self._accept(a, r, w), address, self.port,
                        reuse_address=True)
                except OSError as e:
                    LOG.warning("cannot listen on %s:%d: %s", address, self.port, e)
                    continue
                self._servers[address] = (cloud, server)

    async def close(self) -> None:
        async with self._lock:
            for _, server in self._servers.values():
                server.close()
            self._servers.clear()
            for writer in list(self._silent):
                writer.close()

    async def _accept(self, address: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        resolver = self._resolvers.get(address)
        try:
            decision = resolver(peer) if resolver else Decision("reset")
        except Exception:                  # a cloud going away must not kill the listener
            LOG.exception("deciding about %s -> %s:%d", peer, address, self.port)
            decision = Decision("reset")
        if decision.action == "silent":
            self._silent.add(writer)
            try:
                while await reader.read(CHUNK):
                    pass
            finally:
                self._silent.discard(writer)
                writer.close()
            return
        if decision.action != "forward":
            _reset(writer)
            return
        try:
            guest_reader, guest_writer = await asyncio.open_connection("127.0.0.1",
                                                                       decision.port)
        except OSError:
            _reset(writer)
            return
        await asyncio.gather(pipe(reader, guest_writer), pipe(guest_reader, writer),
                             return_exceptions=True)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST: the client sees the connection refused or reset at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF or an error; then close ``writer``."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass
