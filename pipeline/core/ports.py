"""Ports a process of ours will listen on (a service, qemu's forwarded SSH port).

A port the kernel hands out (``bind(0)``) and we release can be taken at once
as the source port of any outgoing connection on the machine, before our
process binds it: seen as gunicorn's "Address already in use" beside a busy
test run. So ports are picked just below the kernel's ephemeral range, where
only another explicit bind can take one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
BELOW_EPHEMERAL = 12000        # how many ports under the kernel's ephemeral range to pick from


def listen_range(ephemeral_low: int | None = None) -> range:
    """The ports to pick from: just below the kernel's ephemeral range."""
    if ephemeral_low is None:
        try:
            ephemeral_low = int(EPHEMERAL.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            ephemeral_low = 32768
    return range(max(1024, ephemeral_low - BELOW_EPHEMERAL), ephemeral_low)


def free_ports(count: int, candidates: range | None = None, host: str = HOST) -> list[int]:
    """``count`` distinct ports free on ``host`` now, from ``listen_range``."""
    pool = list(candidates if candidates is not None else listen_range())
    random.shuffle(pool)
    socks: list[socket.socket] = []
    try:
        for port in pool:
            if len(socks) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            socks.append(s)
        if len(socks) < count:
            raise OSError(f"fewer than {count} free ports in {pool and min(pool)}-"
                          f"{pool and max(pool)}")
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = HOST) -> int:
    """One port nobody listens on right now, from ``listen_range``."""
    return free_ports(1, host=host)[0]
